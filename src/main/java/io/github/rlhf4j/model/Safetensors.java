package io.github.rlhf4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;

/**
 * One safetensors file, memory-mapped with FFM: tensors are read straight from the mapping into device memory, never
 * through the Java heap. The format: an 8-byte little-endian header length N, N bytes of JSON
 * ({@code name -> {dtype, shape, data_offsets: [begin, end]}} plus optional {@code __metadata__}), then the data,
 * offsets relative to its start. Everything the header claims is checked against the file before any tensor is
 * read: sizes against dtype x shape, offsets against the file length, no overlaps and no holes (as the format
 * requires), so a truncated or lying file fails here, naming the file and the tensor.
 */
public final class Safetensors implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Headers beyond this are refused (the reference implementation's limit). */
    private static final long MAX_HEADER = 100L << 20;

    /** One tensor's entry: its dtype (F32, BF16, F16, I32, F64 here; others refused when read), shape and bytes. */
    public record Entry(String name, String dtype, int[] shape, long begin, long end) {
        public long numel() {
            long n = 1;
            for (int d : shape) n *= d;
            return n;
        }
    }

    private final Path file;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private Safetensors(Path file, Arena arena, MemorySegment data, Map<String, Entry> entries,
                        Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.data = data;
        this.entries = entries;
        this.metadata = metadata;
    }

    /** Maps and validates {@code file}. */
    public static Safetensors open(Path file) {
        long size;
        try {
            size = Files.size(file);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(file + ": file not found");
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot read: " + e.getMessage(), e);
        }
        if (size < 8) throw new ModelFormatException(file + ": truncated: " + size + " bytes, no safetensors header");
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long n = all.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            if (n <= 0 || n > MAX_HEADER || 8 + n > size)
                throw new ModelFormatException(file + ": header length " + n + " is impossible for a file of " + size
                        + " bytes (truncated or not a safetensors file)");
            String header = new String(all.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            MemorySegment data = all.asSlice(8 + n);
            var parsed = parseHeader(file, header, data.byteSize());
            return new Safetensors(file, arena, data, parsed.entries, parsed.metadata);
        } catch (IOException e) {
            arena.close();
            throw new ModelFormatException(file + ": cannot map: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private record Header(Map<String, Entry> entries, Map<String, String> metadata) {}

    private static Header parseHeader(Path file, String text, long dataBytes) {
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (IOException e) {
            throw new ModelFormatException(file + ": header is not valid JSON: " + e.getMessage(), e);
        }
        if (!(root instanceof ObjectNode obj)) throw new ModelFormatException(file + ": header is not a JSON object");
        Map<String, Entry> entries = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (var it = obj.properties().iterator(); it.hasNext(); ) {
            var f = it.next();
            String name = f.getKey();
            JsonNode e = f.getValue();
            if (name.equals("__metadata__")) {
                if (e.isObject()) e.properties().forEach(m -> metadata.put(m.getKey(), m.getValue().asText()));
                continue;
            }
            String where = file + ": tensor '" + name + "'";
            JsonNode dt = e.get("dtype"), sh = e.get("shape"), off = e.get("data_offsets");
            if (dt == null || !dt.isTextual() || sh == null || !sh.isArray() || off == null || !off.isArray()
                    || off.size() != 2)
                throw new ModelFormatException(where + ": needs dtype, shape and data_offsets [begin, end]");
            int[] shape = new int[sh.size()];
            long numel = 1;
            for (int i = 0; i < shape.length; i++) {
                JsonNode d = sh.get(i);
                if (!d.isIntegralNumber() || d.asLong() < 0 || d.asLong() > Integer.MAX_VALUE)
                    throw new ModelFormatException(where + ": bad shape " + sh);
                shape[i] = d.asInt();
                numel = Math.multiplyExact(numel, shape[i]);
            }
            long begin = off.get(0).asLong(-1), end = off.get(1).asLong(-1);
            int elem = elementSize(dt.asText());
            if (begin < 0 || end < begin || end > dataBytes)
                throw new ModelFormatException(where + ": data_offsets [" + begin + ", " + end + "] lie outside the "
                        + dataBytes + " data bytes of the file (truncated?)");
            if (elem > 0 && end - begin != numel * elem)
                throw new ModelFormatException(where + ": " + (end - begin) + " bytes for " + dt.asText()
                        + Arrays.toString(shape) + ", which needs " + numel * elem);
            entries.put(name, new Entry(name, dt.asText(), shape, begin, end));
        }
        List<Entry> byOffset = new ArrayList<>(entries.values());
        byOffset.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long at = 0;
        for (Entry e : byOffset) {
            if (e.begin() != at)
                throw new ModelFormatException(file + ": tensor '" + e.name() + "' starts at " + e.begin()
                        + (e.begin() < at ? ", overlapping the tensor before it" : ", leaving a hole after byte " + at));
            at = e.end();
        }
        if (at != dataBytes)
            throw new ModelFormatException(file + ": tensors cover " + at + " of its " + dataBytes + " data bytes");
        return new Header(Collections.unmodifiableMap(entries), Collections.unmodifiableMap(metadata));
    }

    /** Bytes per element of a safetensors dtype, or 0 for one rlhf4j cannot read (checked when read). */
    private static int elementSize(String dtype) {
        return switch (dtype) {
            case "F64", "I64", "U64" -> 8;
            case "F32", "I32", "U32" -> 4;
            case "F16", "BF16", "I16", "U16" -> 2;
            case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2" -> 1;
            default -> 0;
        };
    }

    static DType dtypeOf(String dtype) {
        return switch (dtype) {
            case "F32" -> DType.F32;
            case "F16" -> DType.F16;
            case "BF16" -> DType.BF16;
            case "F64" -> DType.F64;
            case "I32" -> DType.I32;
            default -> null;
        };
    }

    static String nameOf(DType dtype) {
        return switch (dtype) {
            case F32 -> "F32";
            case F16 -> "F16";
            case BF16 -> "BF16";
            case F64 -> "F64";
            case I32 -> "I32";
        };
    }

    public Path file() {
        return file;
    }

    public Map<String, Entry> entries() {
        return entries;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    /** Copies tensor {@code name} into {@code dst} (same shape; converted to dst's dtype). */
    public void read(String name, Tensor dst) {
        Entry e = entry(name);
        DType dt = readableDtype(name, e);
        if (!Arrays.equals(e.shape(), dst.shape()))
            throw new ModelFormatException(file + ": tensor '" + name + "' has shape " + Arrays.toString(e.shape())
                    + " but the model expects " + Arrays.toString(dst.shape()));
        dst.copyFromHost(data.asSlice(e.begin(), e.end() - e.begin()), dt);
    }

    /**
     * Copies tensor {@code name} into the flat buffer {@code dst} with as many elements, whatever either's shape: a
     * flat buffer is 1-d, or kept in rows past 2^31 elements ({@link Tensor#flatShape}), and a file written one way
     * reads the other.
     */
    public void readFlat(String name, Tensor dst) {
        Entry e = entry(name);
        if (e.numel() != dst.numel())
            throw new ModelFormatException(file + ": tensor '" + name + "' has " + e.numel() + " elements but "
                    + dst.numel() + " are expected");
        readSlice(name, 0, dst);
    }

    /**
     * Copies elements [{@code from}, {@code from + dst.numel()}) of tensor {@code name}, in its row-major order, into
     * contiguous {@code dst} (converted to dst's dtype): a part of a tensor without reading the rest, as a ZeRO rank
     * takes its slice of a whole optimizer buffer.
     */
    public void readSlice(String name, long from, Tensor dst) {
        Entry e = entry(name);
        DType dt = readableDtype(name, e);
        if (from < 0 || from + dst.numel() > e.numel())
            throw new ModelFormatException(file + ": tensor '" + name + "' has " + e.numel() + " elements; elements ["
                    + from + ", " + (from + dst.numel()) + ") were asked for");
        dst.copyFromHost(data.asSlice(e.begin() + from * dt.size, dst.numel() * dt.size), dt);
    }

    private Entry entry(String name) {
        Entry e = entries.get(name);
        if (e == null) throw new ModelFormatException(file + ": no tensor '" + name + "'");
        return e;
    }

    /** The dtype tensor {@code name} is stored in, if rlhf4j reads it. */
    private DType readableDtype(String name, Entry e) {
        DType dt = dtypeOf(e.dtype());
        if (dt == null)
            throw new ModelFormatException(file + ": tensor '" + name + "' has dtype " + e.dtype()
                    + "; rlhf4j reads F32, F16, BF16, F64 and I32");
        return dt;
    }

    @Override
    public void close() {
        arena.close();
    }

    /**
     * Writes {@code tensors} (name -> tensor, written in that order) as one safetensors file in {@code dtype}
     * (floating tensors are converted; I32 stay I32), through a temp file renamed into place.
     */
    public static void write(Path file, Map<String, Tensor> tensors, DType dtype, Map<String, String> metadata)
            throws IOException {
        write(file, tensors, dtype, metadata, null);
    }

    /**
     * As {@link #write(Path, Map, DType, Map)}, each tensor's bytes taken from {@code content.apply(name, tensor)}
     * (same shape and dtype) when that is not null: a tensor computed for the file alone (a LoRA weight fused for a
     * Hugging Face save) lives in a scope of its own while it is copied, so at most one exists at a time.
     */
    public static void write(Path file, Map<String, Tensor> tensors, DType dtype, Map<String, String> metadata,
                             BiFunction<String, Tensor, Tensor> content) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode m = header.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        long at = 0;
        List<long[]> spans = new ArrayList<>();
        List<DType> types = new ArrayList<>();
        for (var e : tensors.entrySet()) {
            Tensor t = e.getValue();
            DType dt = t.dtype() == DType.I32 ? DType.I32 : dtype;
            long bytes = t.numel() * dt.size;
            ObjectNode n = header.putObject(e.getKey());
            n.put("dtype", nameOf(dt));
            var shape = n.putArray("shape");
            for (int d : t.shape()) shape.add(d);
            var off = n.putArray("data_offsets");
            off.add(at);
            off.add(at + bytes);
            spans.add(new long[] {at, bytes});
            types.add(dt);
            at += bytes;
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8; // data starts 8-aligned, as the reference writer pads with spaces
        long total = 8 + padded + at;
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (Arena arena = Arena.ofConfined();
             FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                     StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            MemorySegment out = ch.map(FileChannel.MapMode.READ_WRITE, 0, total, arena);
            out.set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, padded);
            MemorySegment.copy(MemorySegment.ofArray(json), 0, out, 8, json.length);
            out.asSlice(8 + json.length, padded - json.length).fill((byte) ' ');
            int i = 0;
            for (var e : tensors.entrySet()) {
                long[] span = spans.get(i);
                MemorySegment dst = out.asSlice(8 + padded + span[0], span[1]);
                Tensor t = e.getValue();
                if (content == null) {
                    t.copyToHost(dst, types.get(i));
                } else {
                    try (Scope s = Scope.open(t.device())) {
                        Tensor c = content.apply(e.getKey(), t);
                        if (!Arrays.equals(c.shape(), t.shape()) || c.dtype() != t.dtype())
                            throw new IllegalArgumentException(file + ": tensor '" + e.getKey() + "' to write is "
                                    + c.describe() + ", not " + t.describe());
                        c.copyToHost(dst, types.get(i));
                    }
                }
                i++;
            }
            out.force();
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
}
