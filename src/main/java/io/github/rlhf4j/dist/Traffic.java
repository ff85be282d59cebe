package io.github.rlhf4j.dist;

import java.util.EnumMap;
import java.util.Map;

/**
 * What a {@link Communicator} has sent since it was opened (or last {@link Communicator#resetTraffic() reset}): calls
 * and bytes per kind of collective.
 *
 * <p>Bytes are counted by convention, not measured: the volume each rank sends under the ring algorithms, which is
 * what the ZeRO paper (Rajbhandari et al., 2020, section 7) counts. For a buffer of {@code size} bytes (the whole,
 * unsharded buffer) on {@code N} ranks:
 * <ul>
 *   <li>all-reduce: {@code 2 (N - 1) / N * size} (a reduce-scatter then an all-gather), rounded down;
 *   <li>reduce-scatter: {@code (N - 1) / N * size}, i.e. {@code (N - 1)} shards;
 *   <li>all-gather: {@code (N - 1) / N * size}, i.e. {@code (N - 1)} shards;
 *   <li>broadcast: {@code size} on every rank (a pipelined ring forwards the whole buffer once), 0 when alone;
 *   <li>barrier: 0.
 * </ul>
 * So one process alone moves nothing, and data-parallel training's all-reduce of the gradients costs {@code 2 Psi}
 * elements per rank, ZeRO stage 1 and 2 the same (reduce-scatter plus all-gather), stage 3 {@code 3 Psi}. Host
 * values exchanged by {@link Communicator#allGather(long)} and start-up checks are not counted.
 */
public final class Traffic {
    private final EnumMap<Collective, Long> calls;
    private final EnumMap<Collective, Long> bytes;

    private final long startedAhead;

    Traffic(Map<Collective, Long> calls, Map<Collective, Long> bytes) {
        this(calls, bytes, 0);
    }

    Traffic(Map<Collective, Long> calls, Map<Collective, Long> bytes, long startedAhead) {
        this.startedAhead = startedAhead;
        this.calls = new EnumMap<>(Collective.class);
        this.bytes = new EnumMap<>(Collective.class);
        for (Collective c : Collective.values()) {
            this.calls.put(c, calls.getOrDefault(c, 0L));
            this.bytes.put(c, bytes.getOrDefault(c, 0L));
        }
    }

    /**
     * The bytes one rank sends for one call of {@code kind} on a buffer of {@code size} bytes (the whole buffer:
     * the input of a reduce-scatter, the output of an all-gather) among {@code worldSize} ranks, by the convention
     * above.
     */
    public static long volume(Collective kind, long size, int worldSize) {
        if (worldSize < 1) throw new IllegalArgumentException("worldSize " + worldSize + " < 1");
        long n = worldSize;
        return switch (kind) {
            // floor(size 2 (N-1) / N) without overflowing: size = q N + r
            case ALL_REDUCE -> size / n * 2 * (n - 1) + size % n * 2 * (n - 1) / n;
            case REDUCE_SCATTER, ALL_GATHER -> size / n * (n - 1);
            case BROADCAST -> n == 1 ? 0 : size;
            case BARRIER -> 0;
        };
    }

    public long calls(Collective kind) {
        return calls.get(kind);
    }

    public long bytes(Collective kind) {
        return bytes.get(kind);
    }

    /**
     * Of the all-gathers in {@link #calls}, those started ahead of their use ({@link Communicator#allGatherStart})
     * on a transport that overlaps them; a transport that gathers at once counts none.
     */
    public long startedAhead() {
        return startedAhead;
    }

    public long totalBytes() {
        long t = 0;
        for (long b : bytes.values()) t += b;
        return t;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("Traffic[");
        for (Collective c : Collective.values()) {
            if (calls.get(c) == 0) continue;
            if (sb.length() > 8) sb.append(", ");
            sb.append(c.name().toLowerCase(java.util.Locale.ROOT)).append(": ").append(calls.get(c)).append(" calls, ")
                    .append(bytes.get(c)).append(" B");
        }
        if (startedAhead > 0) sb.append(" (").append(startedAhead).append(" all-gathers started ahead)");
        return sb.append(']').toString();
    }
}
