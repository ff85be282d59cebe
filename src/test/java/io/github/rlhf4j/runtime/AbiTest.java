package io.github.rlhf4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The Java bindings mirror native/include/rlhf4j.h one to one, and native failures become clear exceptions. */
class AbiTest {
    private static final Path HEADER = Path.of("native/include/rlhf4j.h");

    /** Each RLHF4J_API function of the header, in order: name and parameter count. */
    private static List<String[]> headerFunctions() throws IOException {
        String text = Files.readString(HEADER).replaceAll("/\\*.*?\\*/", " ").replaceAll("(?s)/\\*.*?\\*/", " ");
        Matcher m = Pattern.compile("RLHF4J_API\\s+[^;]*?\\b(rlhf4j_\\w+)\\s*\\(([^)]*)\\)\\s*;", Pattern.DOTALL).matcher(text);
        List<String[]> out = new ArrayList<>();
        while (m.find()) {
            String params = m.group(2).trim();
            int n = params.equals("void") || params.isEmpty() ? 0 : params.split(",").length;
            out.add(new String[] {m.group(1), Integer.toString(n)});
        }
        return out;
    }

    private static String javaName(String c) {
        String[] parts = c.substring("rlhf4j_".length()).split("_");
        StringBuilder sb = new StringBuilder(parts[0]);
        for (int i = 1; i < parts.length; i++) sb.append(Character.toUpperCase(parts[i].charAt(0))).append(parts[i].substring(1));
        return sb.toString();
    }

    @Test
    void everyHeaderFunctionHasABindingInHeaderOrder() throws IOException {
        List<String[]> fns = headerFunctions();
        assertTrue(fns.size() >= 40, "parsed only " + fns.size() + " functions from " + HEADER);
        List<String> expected = new ArrayList<>();
        for (String[] f : fns) expected.add(javaName(f[0]));
        List<String> actual = new ArrayList<>();
        for (Method m : Abi.class.getDeclaredMethods())
            if (Modifier.isPublic(m.getModifiers()) && !m.getName().equals("backend") && expected.contains(m.getName()))
                actual.add(m.getName());
        List<String> missing = new ArrayList<>(expected);
        missing.removeAll(actual);
        assertEquals(List.of(), missing, "header functions without a Java binding");
        // Out-parameters become return values, so a binding takes the header's count minus its out-parameters.
        for (String[] f : fns) {
            Method m = Arrays.stream(Abi.class.getDeclaredMethods()).filter(x -> x.getName().equals(javaName(f[0])))
                    .findFirst().orElseThrow();
            int outParams = switch (f[0]) {
                case "rlhf4j_device_count", "rlhf4j_device_open", "rlhf4j_stream_create", "rlhf4j_event_create",
                        "rlhf4j_event_native", "rlhf4j_malloc" -> 1;
                case "rlhf4j_device_memory" -> 3;
                default -> 0;
            };
            assertEquals(Integer.parseInt(f[1]) - outParams, m.getParameterCount(), f[0] + " parameter count");
        }
    }

    @Test
    void headerAbiVersionMatchesTheBindings() throws IOException {
        Matcher m = Pattern.compile("#define RLHF4J_ABI_VERSION (\\d+)").matcher(Files.readString(HEADER));
        assertTrue(m.find());
        assertEquals(Abi.ABI_VERSION, Integer.parseInt(m.group(1)));
        assertEquals(Abi.ABI_VERSION, Backend.cpu().abi().abiVersion());
        Matcher d = Pattern.compile("#define RLHF4J_MAX_DIMS (\\d+)").matcher(Files.readString(HEADER));
        assertTrue(d.find());
        assertEquals(Abi.MAX_DIMS, Integer.parseInt(d.group(1)));
    }

    @Test
    void dtypeCodesMatchTheHeader() throws IOException {
        String h = Files.readString(HEADER);
        for (DType t : DType.values()) {
            Matcher m = Pattern.compile("RLHF4J_" + t.name() + " = (\\d+)").matcher(h);
            assertTrue(m.find(), "no RLHF4J_" + t.name() + " in the header");
            assertEquals(t.code, Integer.parseInt(m.group(1)), t.name());
        }
    }

    @Test
    void nativeErrorsNameTheFunctionAndTheArgument() {
        Device dev = Device.cpu();
        Abi abi = dev.abi();
        NativeException e = assertThrows(NativeException.class, () -> abi.malloc(dev.handle(), -5));
        assertEquals("rlhf4j_malloc", e.function());
        assertEquals(NativeException.Status.INVALID_ARGUMENT, e.status());
        assertTrue(e.getMessage().contains("bytes") && e.getMessage().contains("-5"), e.getMessage());
        NativeException f = assertThrows(NativeException.class, () -> abi.free(dev.handle(), 256));
        assertTrue(f.getMessage().contains("rlhf4j_free"), f.getMessage());
        NativeException u = assertThrows(NativeException.class,
                () -> abi.unary(dev.stream(), 0, DType.BF16.code, 0, 0, 0, 0, 0));
        assertEquals(NativeException.Status.UNSUPPORTED, u.status());
        assertTrue(u.getMessage().contains("bf16"), u.getMessage());
    }

    @Test
    void doubleFreeIsDetected() {
        Device dev = Device.cpu();
        long p = dev.abi().malloc(dev.handle(), 100);
        dev.abi().free(dev.handle(), p);
        NativeException e = assertThrows(NativeException.class, () -> dev.abi().free(dev.handle(), p));
        assertTrue(e.getMessage().contains("already freed"), e.getMessage());
        NativeException g = assertThrows(NativeException.class, () -> dev.abi().free(dev.handle(), p + 256));
        assertTrue(g.getMessage().contains("not a live allocation"), g.getMessage());
    }

    @Test
    void memoryCountersFollowAllocations() {
        Device dev = Device.cpu();
        long before = dev.memory().inUse();
        long p = dev.abi().malloc(dev.handle(), 1 << 20);
        assertEquals(before + (1 << 20), dev.memory().inUse());
        dev.abi().free(dev.handle(), p);
        assertEquals(before, dev.memory().inUse());
    }

    @Test
    void backendReportsWhatItDispatchesTo() {
        Backend cpu = Backend.cpu();
        assertEquals("cpu", cpu.name());
        assertTrue(cpu.features().startsWith("isa="), cpu.features());
        assertEquals(1, cpu.deviceCount());
    }
}
