package io.github.rlhf4j.data;

/**
 * The seeded shuffles of rlhf4j's data order, bit for bit numpy's {@code np.random.RandomState(seed).shuffle(
 * np.arange(n))}, the shuffle DeepSpeed-Chat's {@code get_shuffle_idx} uses: so a split or blend with the same seed
 * puts the same rows in each phase as DeepSpeed-Chat does.
 *
 * <p>That is MT19937 seeded with {@code init_genrand(seed)} (numpy's legacy seeding of an integer), and a
 * Fisher-Yates pass from the last element down, each swap partner drawn by numpy's {@code random_interval}: a 32-bit
 * draw masked to the bit length of the bound, redrawn until it is within the bound. No maintained Java library seeds
 * MT19937 this way (Commons RNG uses {@code init_by_array}), hence the few lines here, checked against numpy by
 * ShuffleTest.
 */
public final class Shuffle {
    private Shuffle() {}

    /**
     * A permutation of {@code 0 .. n-1}: {@code np.random.RandomState(seed).shuffle(np.arange(n))}.
     *
     * @param seed 0 to 2<sup>32</sup> - 1, as numpy requires
     */
    public static int[] permutation(long seed, int n) {
        if (seed < 0 || seed > 0xFFFF_FFFFL)
            throw new IllegalArgumentException("seed must be between 0 and 2^32 - 1 (numpy's RandomState), got " + seed);
        if (n < 0) throw new IllegalArgumentException("n must not be negative, got " + n);
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        Mt19937 rng = new Mt19937((int) seed);
        for (int i = n - 1; i > 0; i--) {
            int j = rng.interval(i);
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        return a;
    }

    /** Matsumoto and Nishimura's MT19937, 32-bit output. */
    private static final class Mt19937 {
        private final int[] mt = new int[624];
        private int next = 624;

        Mt19937(int seed) { // init_genrand
            mt[0] = seed;
            for (int i = 1; i < 624; i++) mt[i] = 1812433253 * (mt[i - 1] ^ (mt[i - 1] >>> 30)) + i;
        }

        int nextInt() { // genrand_int32, as an unsigned value in an int
            if (next >= 624) {
                for (int k = 0; k < 624; k++) {
                    int y = (mt[k] & 0x8000_0000) | (mt[(k + 1) % 624] & 0x7FFF_FFFF);
                    mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0);
                }
                next = 0;
            }
            int y = mt[next++];
            y ^= y >>> 11;
            y ^= (y << 7) & 0x9D2C_5680;
            y ^= (y << 15) & 0xEFC6_0000;
            y ^= y >>> 18;
            return y;
        }

        /** numpy's random_interval(max) for max below 2^31: uniform in [0, max]. */
        int interval(int max) {
            int mask = max;
            mask |= mask >>> 1;
            mask |= mask >>> 2;
            mask |= mask >>> 4;
            mask |= mask >>> 8;
            mask |= mask >>> 16;
            int v;
            do {
                v = nextInt() & mask;
            } while (v > max); // mask < 2^31, so v is never negative
            return v;
        }
    }
}
