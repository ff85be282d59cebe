package io.github.rlhf4j.data;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * {@code --data-path A B C --data-split 2,4,4 --seed 1234}: which rows each step trains and evaluates on, exactly as
 * DeepSpeed-Chat's {@code create_prompt_dataset} chooses them.
 *
 * <p>For each dataset and each side (train, eval), the row indices are shuffled with the seed ({@link Shuffle}, the
 * same permutation as numpy's) and cut by {@link SplitSpec#boundaries}: step {@code k} gets part {@code k - 1}, so
 * the three steps never share a row. A dataset without eval files first gives 90% of its rows to train and 10% to
 * eval (its own seeded {@code 9,1} split), as DeepSpeed-Chat does for datasets with one split. Bad rows keep their
 * place in the shuffle and are then left out, counted in {@link Rows#skips()}. With several datasets, each step's
 * rows are concatenated in {@code --data-path} order and shuffled again with the seed ({@link Rows}).
 *
 * <p>The index lists are cached in {@code cacheDir} (DeepSpeed-Chat's {@code --data_output_path}), keyed by dataset,
 * seed, side, split and part, and reused while the dataset keeps its row count.
 */
public final class DataSplit {
    /** The two sides of a dataset: the rows a step trains on, and those it reports its eval figures on. */
    public enum Part { TRAIN, EVAL }

    /** DeepSpeed-Chat's split of datasets without eval rows into train and eval. */
    static final SplitSpec TRAIN_EVAL = SplitSpec.parse("9,1");

    private final List<Dataset> datasets;
    private final SplitSpec split;
    private final long seed;
    private final Path cacheDir;
    private final Map<String, int[][]> indices = new HashMap<>();

    private DataSplit(List<Dataset> datasets, SplitSpec split, long seed, Path cacheDir) {
        this.datasets = datasets;
        this.split = split;
        this.seed = seed;
        this.cacheDir = cacheDir;
    }

    /**
     * Reads each path ({@link Dataset#load(Path)}, schemas found from the first record) and splits them.
     *
     * @param cacheDir where the index lists are cached, or null to compute them each time
     */
    public static DataSplit load(List<Path> paths, SplitSpec split, long seed, Path cacheDir) {
        return of(paths.stream().map(Dataset::load).toList(), split, seed, cacheDir);
    }

    /**
     * Splits datasets already read.
     *
     * @param split three parts, for steps 1, 2 and 3
     * @param seed 0 to 2<sup>32</sup> - 1, as numpy requires
     * @param cacheDir where the index lists are cached, or null to compute them each time
     */
    public static DataSplit of(List<Dataset> datasets, SplitSpec split, long seed, Path cacheDir) {
        Objects.requireNonNull(split, "split");
        if (datasets.isEmpty()) throw new IllegalArgumentException("no datasets to split");
        if (split.parts() != 3) throw new IllegalArgumentException("data split '" + split + "' has " + split.parts()
                + " parts; it needs three, one for each step (such as 2,4,4)");
        if (seed < 0 || seed > 0xFFFF_FFFFL)
            throw new IllegalArgumentException("seed must be between 0 and 2^32 - 1, got " + seed);
        return new DataSplit(List.copyOf(datasets), split, seed, cacheDir);
    }

    public List<Dataset> datasets() {
        return datasets;
    }

    public SplitSpec split() {
        return split;
    }

    public long seed() {
        return seed;
    }

    /**
     * The indices, into {@code dataset}'s train or eval records in file order, of the rows this phase gets, bad rows
     * included, in shuffled order.
     */
    public int[] indices(Dataset dataset, Phase phase, Part part) {
        int k = phase.step() - 1;
        if (dataset.hasEval()) {
            String name = part == Part.TRAIN ? "train" : "eval";
            return index(dataset, name, split, dataset.records(part).size())[k].clone();
        }
        // One split of rows: DeepSpeed-Chat's get_train_data/get_eval_data take a seeded 9:1 cut first.
        int[] base = index(dataset, "train_eval", TRAIN_EVAL,
                dataset.records(Part.TRAIN).size())[part == Part.TRAIN ? 0 : 1];
        String name = part == Part.TRAIN ? "train" : "eval";
        int[] within = index(dataset, name, split, base.length)[k];
        int[] out = new int[within.length];
        for (int i = 0; i < out.length; i++) out[i] = base[within[i]];
        return out;
    }

    private int[][] index(Dataset d, String name, SplitSpec s, int size) {
        return indices.computeIfAbsent(d.name() + "/" + name + "/" + s.text(),
                key -> SplitIndexCache.parts(cacheDir, d.name(), seed, name, s, size));
    }

    /** The usable rows of a phase, whatever their type. */
    public Rows<Row> rows(Phase phase, Part part) {
        return select(phase, part, (d, r) -> r);
    }

    /**
     * The preference pairs of a phase (steps 1 and 2).
     *
     * @throws IllegalArgumentException for a dataset whose schema has no answers (prompt-only or plain text)
     */
    public Rows<PreferenceRow> pairs(Phase phase, Part part) {
        for (Dataset d : datasets) // the built-in schemas are known without looking at rows
            if (d.schema() == RowSchema.PROMPT || d.schema() == RowSchema.TEXT) throw noPairs(d, phase);
        return select(phase, part, (d, r) -> {
            if (r instanceof PreferenceRow p) return p;
            throw noPairs(d, phase);
        });
    }

    private static IllegalArgumentException noPairs(Dataset d, Phase phase) {
        return new IllegalArgumentException(d.path() + " has schema '" + d.schema().name() + "', without chosen and"
                + " rejected answers: step " + phase.step() + " needs preference pairs");
    }

    /**
     * The prompts of a phase (step 3): a prompt-only row as it is, a pair's prompt.
     *
     * @throws IllegalArgumentException for a plain-text dataset
     */
    public Rows<PromptRow> prompts(Phase phase, Part part) {
        for (Dataset d : datasets)
            if (d.schema() == RowSchema.TEXT) throw noPrompts(d);
        return select(phase, part, (d, r) -> switch (r) {
            case PromptRow p -> p;
            case PreferenceRow p -> new PromptRow(p.prompt());
            case TextRow t -> throw noPrompts(d);
        });
    }

    private static IllegalArgumentException noPrompts(Dataset d) {
        return new IllegalArgumentException(d.path() + " has schema '" + d.schema().name() + "' (plain text): it has"
                + " no prompts; plain text is for the unsupervised dataset");
    }

    private interface Convert<R> {
        R apply(Dataset d, Row r);
    }

    private <R extends Row> Rows<R> select(Phase phase, Part part, Convert<R> convert) {
        Objects.requireNonNull(phase, "phase");
        Objects.requireNonNull(part, "part");
        SkipReport skips = new SkipReport();
        List<Rows.Part<R>> parts = new ArrayList<>();
        for (Dataset d : datasets) {
            Dataset.Records recs = d.records(d.hasEval() ? part : Part.TRAIN);
            int[] idx = indices(d, phase, part);
            List<R> rows = new ArrayList<>(idx.length);
            List<RowPosition> at = new ArrayList<>(idx.length);
            skips.looked(idx.length);
            for (int i : idx) {
                Row r = recs.rows().get(i);
                if (r == null) {
                    skips.skip(recs.positions().get(i), recs.bad().get(i));
                } else {
                    rows.add(convert.apply(d, r));
                    at.add(recs.positions().get(i));
                }
            }
            parts.add(new Rows.Part<>(d.name(), rows, at));
        }
        return new Rows<>(parts, seed, skips);
    }

    @Override
    public String toString() {
        return "DataSplit[" + datasets.size() + " datasets, split " + split + ", seed " + seed + "]";
    }
}
