package io.github.rlhf4j.optim;

/**
 * Learning-rate schedules as transformers' get_scheduler defines them (the ones DeepSpeed-Chat users pick): a factor
 * of the base learning rate for each optimizer step, counted from 0 as LambdaLR counts (so with warm-up the first
 * step's factor is 0).
 */
@FunctionalInterface
public interface LrSchedule {
    /** The factor for optimizer step {@code step} (0-based). */
    double factor(long step);

    default double lr(double base, long step) {
        return base * factor(step);
    }

    /** Linear warm-up to 1, then linear decay to 0 at {@code total} (get_linear_schedule_with_warmup). */
    static LrSchedule linear(long warmup, long total) {
        check(warmup, total);
        return step -> step < warmup ? (double) step / Math.max(1, warmup)
                : Math.max(0.0, (double) (total - step) / Math.max(1, total - warmup));
    }

    /** Linear warm-up, then half a cosine wave to 0 at {@code total} (get_cosine_schedule_with_warmup). */
    static LrSchedule cosine(long warmup, long total) {
        check(warmup, total);
        return step -> {
            if (step < warmup) return (double) step / Math.max(1, warmup);
            double progress = (double) (step - warmup) / Math.max(1, total - warmup);
            return Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * 0.5 * 2.0 * progress)));
        };
    }

    /** Linear warm-up, then 1 (get_constant_schedule_with_warmup; warmup 0 is "constant"). */
    static LrSchedule constant(long warmup) {
        check(warmup, Long.MAX_VALUE);
        return step -> step < warmup ? (double) step / Math.max(1, warmup) : 1.0;
    }

    /** By transformers' names: "linear", "cosine", "constant", "constant_with_warmup". */
    static LrSchedule named(String name, long warmup, long total) {
        return switch (name) {
            case "linear" -> linear(warmup, total);
            case "cosine" -> cosine(warmup, total);
            case "constant" -> constant(0);
            case "constant_with_warmup" -> constant(warmup);
            default -> throw new IllegalArgumentException("unknown lr scheduler '" + name
                    + "': expected linear, cosine, constant or constant_with_warmup");
        };
    }

    private static void check(long warmup, long total) {
        if (warmup < 0) throw new IllegalArgumentException("warm-up steps " + warmup + " must be >= 0");
        if (total < warmup) throw new IllegalArgumentException("total steps " + total + " < warm-up steps " + warmup);
    }
}
