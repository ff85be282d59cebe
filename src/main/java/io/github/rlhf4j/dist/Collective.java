package io.github.rlhf4j.dist;

/** The kinds of collective call a {@link Communicator} counts in its {@link Traffic}. */
public enum Collective {
    ALL_REDUCE,
    REDUCE_SCATTER,
    ALL_GATHER,
    BROADCAST,
    BARRIER
}
