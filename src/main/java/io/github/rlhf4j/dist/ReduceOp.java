package io.github.rlhf4j.dist;

/**
 * How an all-reduce or reduce-scatter combines the ranks' values. BF16 and F16 are combined as NCCL does on every
 * transport: each pairwise step in F32, rounded to nearest even.
 */
public enum ReduceOp {
    SUM(0),
    /** For checks (a flag set on any rank, the largest loss); NaN wins, as torch.maximum. */
    MAX(1),
    MIN(2);

    /** The {@code rlhf4j_dist_op} value of rlhf4j_dist.h. */
    public final int code;

    ReduceOp(int code) {
        this.code = code;
    }
}
