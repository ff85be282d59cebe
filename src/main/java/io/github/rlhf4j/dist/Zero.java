package io.github.rlhf4j.dist;

/** ZeRO's layout rules for a store trained on several ranks. */
public final class Zero {
    private Zero() {}

    /**
     * The multiple a flat F32 store's length must be for {@code world} ranks to own equal slices that each start on
     * 256 bytes (ParameterStore's 64-element alignment, a multiple of the partitioner's 128 bytes): 64 x world
     * elements. Pass it to {@code ParameterStore.allocate(..., flatMultiple)}.
     */
    public static long flatMultiple(int world) {
        if (world < 1) throw new IllegalArgumentException("world size " + world + " must be >= 1");
        return 64L * world;
    }
}
