package io.github.rlhf4j.model;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;

/**
 * The keys and values of every layer for a batch of sequences being generated: per layer k and v of
 * [batch, maxLength, kvHeads, headDim], plus the key mask [batch, maxLength] (0 = left padding). A forward with a
 * cache runs in three steps: {@link #begin} with the new tokens' mask, then per layer {@link #attend} (which writes
 * the layer's new keys and values at rows [length, length + T) and attends over rows [0, length + T)), then
 * {@link #advance}. Prefill is one such forward with the whole prompt; each decode step one with T = 1.
 *
 * <p>Rows of sequences that have finished can be dropped with {@link #keepRows}, so they stop costing work. The
 * cache owns its memory (one detached scope); close it when generation ends.
 */
public final class KvCache implements AutoCloseable {
    private final Scope scope;
    private final Tensor[] k, v;
    private final Tensor keyMask;
    private final int maxBatch, maxLength, kvHeads, headDim;
    private int batch, length, pending = -1;

    public KvCache(Device device, DType dtype, int layers, int batch, int maxLength, int kvHeads, int headDim) {
        if (layers <= 0 || batch <= 0 || maxLength <= 0 || kvHeads <= 0 || headDim <= 0)
            throw new IllegalArgumentException("KvCache: layers " + layers + ", batch " + batch + ", maxLength "
                    + maxLength + ", kvHeads " + kvHeads + ", headDim " + headDim + " must all be > 0");
        this.scope = Scope.detached(device);
        this.maxBatch = batch;
        this.batch = batch;
        this.maxLength = maxLength;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.k = new Tensor[layers];
        this.v = new Tensor[layers];
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (int i = 0; i < layers; i++) {
                k[i] = scope.empty(dtype, batch, maxLength, kvHeads, headDim);
                v[i] = scope.empty(dtype, batch, maxLength, kvHeads, headDim);
            }
            keyMask = scope.zeros(DType.I32, batch, maxLength);
        }
    }

    /** A cache for {@code config}'s shapes. */
    public static KvCache of(ModelConfig config, Device device, DType dtype, int batch, int maxLength) {
        return new KvCache(device, dtype, config.numLayers(), batch, maxLength, config.numKvHeads(),
                config.headDim());
    }

    /** Sequences (rows) in use: the batch it was made for, less the rows dropped by {@link #keepRows}. */
    public int batch() {
        return batch;
    }

    /** Positions already cached per sequence (padding included). */
    public int length() {
        return length;
    }

    public int maxLength() {
        return maxLength;
    }

    public int layers() {
        return k.length;
    }

    /**
     * Starts a forward of {@code t} new positions whose attention mask is {@code mask} (I32 [batch, t], 0 = padding;
     * null = all real tokens).
     */
    public void begin(int t, Tensor mask) {
        if (pending >= 0) throw new IllegalStateException("KvCache.begin: the previous forward did not advance()");
        if (t <= 0 || length + t > maxLength)
            throw new IllegalArgumentException("KvCache: " + t + " new positions after " + length
                    + " cached exceed its maxLength " + maxLength);
        Tensor rows = keyMask.slice(0, 0, batch).slice(1, length, length + t);
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            if (mask == null) rows.fill(1);
            else {
                if (mask.size(0) != batch || mask.size(1) != t)
                    throw new IllegalArgumentException("KvCache.begin: mask " + mask.describe() + " must be ["
                            + batch + ", " + t + "]");
                rows.copyFromTensor(mask, false);
            }
        }
        pending = t;
    }

    /**
     * Writes layer {@code layer}'s new keys and values (k, v [batch, t, kvHeads, headDim], any row strides) into the
     * cache and returns the attention of q [batch, t, heads, headDim] over every cached position: causal, with
     * {@code window} > 0 limiting it to that many positions back (GPT-Neo's local layers). Not differentiable.
     */
    public Tensor attend(int layer, Tensor q, Tensor kNew, Tensor vNew, double scale, int window) {
        if (pending < 0) throw new IllegalStateException("KvCache.attend before begin()");
        int t = pending;
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            k[layer].slice(0, 0, batch).slice(1, length, length + t).copyFromTensor(kNew, false);
            v[layer].slice(0, 0, batch).slice(1, length, length + t).copyFromTensor(vNew, false);
            return Functional.attentionDecode(q, k[layer].slice(0, 0, batch), v[layer].slice(0, 0, batch),
                    length + t, keyMask.slice(0, 0, batch), scale, window);
        }
    }

    /** Ends the forward begun by {@link #begin}: its positions are now cached. */
    public void advance() {
        if (pending < 0) throw new IllegalStateException("KvCache.advance before begin()");
        length += pending;
        pending = -1;
    }

    /**
     * Keeps only the sequences {@code rows} (ascending indices into the current batch), moved to the front in that
     * order; the others are dropped, so finished sequences stop costing attention and matmul work.
     */
    public void keepRows(int[] rows) {
        if (pending >= 0) throw new IllegalStateException("KvCache.keepRows during a forward");
        for (int i = 0; i < rows.length; i++)
            if (rows[i] < i || rows[i] >= batch || (i > 0 && rows[i] <= rows[i - 1]))
                throw new IllegalArgumentException("KvCache.keepRows: rows must be ascending indices below " + batch);
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (int i = 0; i < rows.length; i++) {
                if (rows[i] == i) continue;
                for (Tensor[] kv : new Tensor[][] {k, v})
                    for (Tensor c : kv)
                        c.slice(0, i, i + 1).slice(1, 0, length)
                                .copyFromTensor(c.slice(0, rows[i], rows[i] + 1).slice(1, 0, length), false);
                keyMask.slice(0, i, i + 1).copyFromTensor(keyMask.slice(0, rows[i], rows[i] + 1), false);
            }
        }
        batch = rows.length;
    }

    /** Bytes of cache memory held. */
    public long bytes() {
        long per = (long) maxBatch * maxLength * kvHeads * headDim * k[0].dtype().size;
        return 2L * k.length * per + (long) maxBatch * maxLength * 4;
    }

    @Override
    public void close() {
        scope.close();
    }
}
