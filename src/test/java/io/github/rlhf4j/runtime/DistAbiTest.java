package io.github.rlhf4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.dist.ReduceOp;
import java.io.IOException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** The Java bindings mirror native/include/rlhf4j_dist.h, and the shim of this build loads and refuses early calls. */
class DistAbiTest {
    private static final Path HEADER = Path.of("native/include/rlhf4j_dist.h");

    private static String javaName(String c) {
        if (c.equals("rlhf4j_dist_finalize")) return "finalizeWorld";
        String[] parts = c.substring("rlhf4j_dist_".length()).split("_");
        StringBuilder sb = new StringBuilder(parts[0]);
        for (int i = 1; i < parts.length; i++) sb.append(Character.toUpperCase(parts[i].charAt(0))).append(parts[i].substring(1));
        return sb.toString();
    }

    @Test
    void everyHeaderFunctionHasABinding() throws IOException {
        String text = Files.readString(HEADER).replaceAll("(?s)/\\*.*?\\*/", " ");
        Matcher m = Pattern.compile("RLHF4J_API\\s+[^;]*?\\b(rlhf4j_dist_\\w+)\\s*\\(([^)]*)\\)\\s*;", Pattern.DOTALL)
                .matcher(text);
        List<String> missing = new ArrayList<>();
        int n = 0;
        while (m.find()) {
            n++;
            String params = m.group(2).trim();
            int count = params.equals("void") || params.isEmpty() ? 0 : params.split(",").length;
            int outParams = switch (m.group(1)) {
                case "rlhf4j_dist_rank", "rlhf4j_dist_world_size", "rlhf4j_dist_local_rank",
                        "rlhf4j_dist_local_size", "rlhf4j_dist_all_gather_start" -> 1;
                default -> 0;
            };
            Optional<Method> b = Arrays.stream(DistAbi.class.getDeclaredMethods())
                    .filter(x -> Modifier.isPublic(x.getModifiers()) && x.getName().equals(javaName(m.group(1))))
                    .findFirst();
            if (b.isEmpty()) missing.add(m.group(1));
            else assertEquals(count - outParams, b.get().getParameterCount(), m.group(1) + " parameter count");
        }
        assertTrue(n >= 20, "parsed only " + n + " functions from " + HEADER);
        assertEquals(List.of(), missing, "header functions without a Java binding");
    }

    @Test
    void constantsMatchTheHeader() throws IOException {
        String h = Files.readString(HEADER);
        assertEquals(DistAbi.ABI_VERSION, define(h, "RLHF4J_DIST_ABI_VERSION"));
        assertEquals(DistAbi.I64, define(h, "RLHF4J_DIST_I64"));
        for (ReduceOp op : ReduceOp.values()) {
            Matcher m = Pattern.compile("RLHF4J_DIST_" + op.name() + " = (\\d+)").matcher(h);
            assertTrue(m.find(), op.name());
            assertEquals(op.code, Integer.parseInt(m.group(1)), op.name());
        }
        assertEquals(List.of(DistAbi.SUM, DistAbi.MAX, DistAbi.MIN),
                List.of(ReduceOp.SUM.code, ReduceOp.MAX.code, ReduceOp.MIN.code));
    }

    private static int define(String h, String name) {
        Matcher m = Pattern.compile("#define " + name + " (\\d+)").matcher(h);
        assertTrue(m.find(), name);
        return Integer.parseInt(m.group(1));
    }

    /** Loading does not start MPI; a collective before rlhf4j_dist_init is refused with the reason. */
    @Test
    void theShimLoadsAndRefusesCallsBeforeInit() {
        Optional<DistAbi> shim = DistAbi.load();
        if (shim.isEmpty()) {
            String why = "DistAbiTest: no librlhf4j_dist.so in this build (no mpicc): load test skipped";
            System.out.println(why);
            Assumptions.assumeTrue(false, why);
        }
        DistAbi abi = shim.get();
        assertEquals(DistAbi.ABI_VERSION, abi.abiVersion());
        assertTrue(abi.describe().contains("not initialised"), abi.describe());
        NativeException e = assertThrows(NativeException.class, () -> abi.allReduce(0, 0, 0, DType.F32.code, 0));
        assertEquals("rlhf4j_dist_all_reduce", e.function());
        assertEquals(NativeException.Status.INTERNAL, e.status());
        assertTrue(e.getMessage().contains("before rlhf4j_dist_init"), e.getMessage());
        NativeException n = assertThrows(NativeException.class, () -> abi.ncclSynchronize(0));
        assertTrue(n.getMessage().contains("before rlhf4j_dist_init"), n.getMessage());
    }
}
