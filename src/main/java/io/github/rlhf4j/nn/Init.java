package io.github.rlhf4j.nn;

/** How a parameter starts: the distributions transformers' _init_weights uses. */
public record Init(Kind kind, double a, double b) {
    public enum Kind { ZEROS, ONES, NORMAL, UNIFORM }

    public static Init zeros() {
        return new Init(Kind.ZEROS, 0, 0);
    }

    public static Init ones() {
        return new Init(Kind.ONES, 0, 0);
    }

    /** Normal(0, std): GPT-2, OPT and Llama use std = initializer_range (0.02). */
    public static Init normal(double std) {
        return new Init(Kind.NORMAL, 0, std);
    }

    public static Init uniform(double low, double high) {
        return new Init(Kind.UNIFORM, low, high);
    }
}
