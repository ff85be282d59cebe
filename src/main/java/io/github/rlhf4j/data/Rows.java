package io.github.rlhf4j.data;

import java.util.AbstractList;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;

/**
 * The usable rows one step gets, with where each came from and a {@link SkipReport} of the rows left out.
 *
 * <p>Rows from several datasets are blended as DeepSpeed-Chat blends them: concatenated in {@code --data-path}
 * order, then put in the order of {@link Shuffle#permutation} with the run's seed; rows of a single dataset keep the
 * order their split gave them. Tokenizing builders that drop more rows (step 3's over-long prompts) drop them from
 * each dataset before the blend, as DeepSpeed-Chat does, so the blend is the same as its.
 *
 * @param <R> the row type
 */
public final class Rows<R extends Row> extends AbstractList<R> {
    /** One dataset's share, in split order. */
    record Part<R>(String dataset, List<R> rows, List<RowPosition> positions) {
        Part {
            if (rows.size() != positions.size()) throw new IllegalArgumentException("rows and positions differ");
        }
    }

    private final List<Part<R>> parts;
    private final long seed;
    private final SkipReport skips;
    private final List<R> rows;
    private final List<RowPosition> positions;

    Rows(List<Part<R>> parts, long seed, SkipReport skips) {
        this.parts = List.copyOf(parts);
        this.seed = seed;
        this.skips = Objects.requireNonNull(skips, "skips");
        this.rows = blend(this.parts.stream().map(Part::rows).toList(), seed);
        this.positions = blend(this.parts.stream().map(Part::positions).toList(), seed);
    }

    /** Rows of one source, in the given order, with nothing skipped: for tests and programs that make rows. */
    public static <R extends Row> Rows<R> of(List<R> rows, List<RowPosition> positions) {
        SkipReport skips = new SkipReport();
        skips.looked(rows.size());
        return new Rows<>(List.of(new Part<>("rows", List.copyOf(rows), List.copyOf(positions))), 0, skips);
    }

    /**
     * DeepSpeed-Chat's blend: a single list as it is; several concatenated, then element {@code i} of the result
     * is element {@code permutation(seed, total)[i]} of the concatenation ({@code Subset(ConcatDataset(...),
     * shuffle_idx)}).
     */
    static <T> List<T> blend(List<List<T>> lists, long seed) {
        if (lists.size() == 1) return List.copyOf(lists.getFirst());
        List<T> all = new ArrayList<>();
        lists.forEach(all::addAll);
        int[] order = Shuffle.permutation(seed, all.size());
        List<T> out = new ArrayList<>(all.size());
        for (int i : order) out.add(all.get(i));
        return List.copyOf(out);
    }

    List<Part<R>> parts() {
        return parts;
    }

    long seed() {
        return seed;
    }

    @Override
    public R get(int i) {
        return rows.get(i);
    }

    @Override
    public int size() {
        return rows.size();
    }

    @Override
    public Iterator<R> iterator() {
        return rows.iterator();
    }

    /** Where row {@code i} comes from. */
    public RowPosition position(int i) {
        return positions.get(i);
    }

    /** The rows left out of this selection, and why. */
    public SkipReport skips() {
        return skips;
    }
}
