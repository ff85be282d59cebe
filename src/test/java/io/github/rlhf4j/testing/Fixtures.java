package io.github.rlhf4j.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/** Reads the JSON fixtures made by src/test/python/ (PyTorch and transformers outputs), and builds tensors of them. */
public final class Fixtures {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Fixtures() {}

    public static JsonNode load(String name) {
        try (InputStream in = Fixtures.class.getResourceAsStream("/fixtures/" + name)) {
            if (in == null) throw new IllegalStateException("missing test fixture /fixtures/" + name);
            return JSON.readTree(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static int[] shape(JsonNode t) {
        JsonNode s = t.get("shape");
        int[] out = new int[s.size()];
        for (int i = 0; i < out.length; i++) out[i] = s.get(i).asInt();
        return out;
    }

    public static double[] doubles(JsonNode t) {
        JsonNode d = t.get("data");
        double[] out = new double[d.size()];
        for (int i = 0; i < out.length; i++) out[i] = d.get(i).asDouble();
        return out;
    }

    public static int[] ints(JsonNode t) {
        JsonNode d = t.get("data");
        int[] out = new int[d.size()];
        for (int i = 0; i < out.length; i++) out[i] = d.get(i).asInt();
        return out;
    }

    /** A fixture tensor in the current scope: i32 stays i32, floating data becomes {@code floating}. */
    public static Tensor tensor(JsonNode t, DType floating) {
        int[] shape = shape(t);
        if ("i32".equals(t.get("dtype").asText())) return Tensor.ofInts(ints(t), shape);
        Tensor f64 = Scope.current().of(doubles(t), shape);
        return floating == DType.F64 ? f64 : f64.to(floating);
    }

}
