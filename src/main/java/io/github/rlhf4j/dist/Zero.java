package io.github.rlhf4j.dist;

import io.github.rlhf4j.nn.ParameterStore;

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

    /**
     * The layout a trained store needs on {@code world} ranks at ZeRO {@code stage}: one process or stage 0, the
     * default; stage 1, a flat length of equal aligned slices; stages 2 and 3, every layer group cut on that
     * multiple too, so each layer is reduce-scattered and gathered in place.
     */
    public static ParameterStore.Layout layout(int world, int stage) {
        if (stage < 0 || stage > 3) throw new IllegalArgumentException("ZeRO stage " + stage + " must be 0, 1, 2 or 3");
        if (world == 1 || stage == 0) return ParameterStore.Layout.DEFAULT;
        return new ParameterStore.Layout(flatMultiple(world), stage >= 2);
    }
}
