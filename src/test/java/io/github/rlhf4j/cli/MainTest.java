package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.Rlhf4j;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class MainTest {
    private static String run(int expectedExit, String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        int exit;
        try {
            exit = Main.run(args);
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        assertEquals(expectedExit, exit, "exit code of rlhf4j " + String.join(" ", args) + "; it printed:\n" + out);
        return out;
    }

    @Test
    void versionNamesTheBuild() {
        String out = run(0, "--version");
        assertTrue(out.contains("rlhf4j " + Rlhf4j.version()), out);
        assertTrue(!Rlhf4j.version().equals("unknown") && !Rlhf4j.version().contains("${"), Rlhf4j.version());
    }

    @Test
    void helpListsTheCommandsWithExamples() {
        String out = run(0, "--help");
        assertTrue(out.contains("selftest") && out.contains("Examples"), out);
    }

    @Test
    void selftestPassesOnThisMachine() {
        String out = run(0, "selftest", "--threads", "2");
        assertTrue(out.contains("backend: cpu") && out.contains("dispatch: isa="), out);
        assertTrue(out.contains("selftest passed"), out);
        assertTrue(!out.contains("[FAIL]"), out);
    }
}
