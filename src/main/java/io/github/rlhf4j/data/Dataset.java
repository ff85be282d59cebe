package io.github.rlhf4j.data;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * One {@code --data-path} entry, read into memory: a data file, or a folder of them in Hugging Face's layout.
 *
 * <p>A folder holds its train files ({@code train*}, such as {@code train-00000-of-00002.parquet}) and, optionally,
 * eval files ({@code test*}, {@code eval*}, {@code validation*}), directly or under {@code data/}; a folder with
 * neither kind reads all its data files as train files. Without eval files, {@link DataSplit} takes the eval rows
 * from the train rows (DeepSpeed-Chat's 9:1 {@code train_eval} split for such datasets). Every file of a dataset
 * has the same schema: the one given, or the one {@link RowSchema#detect} finds in the first record.
 *
 * <p>All records are kept, the bad ones as their {@link BadRowException}, so that a split indexes rows as
 * DeepSpeed-Chat does (bad rows included) and each step counts the bad rows of its own share.
 */
public final class Dataset {
    /** The records of one side (train or eval files), in file order; {@code rows[i]} is null for a bad row. */
    record Records(List<Row> rows, List<RowPosition> positions, List<BadRowException> bad) {
        int size() {
            return rows.size();
        }
    }

    private final Path path;
    private final String name;
    private final RowSchema schema;
    private final List<Path> trainFiles, evalFiles;
    private final Records train, eval;

    private Dataset(Path path, String name, RowSchema schema, List<Path> trainFiles, List<Path> evalFiles,
                    Records train, Records eval) {
        this.path = path;
        this.name = name;
        this.schema = schema;
        this.trainFiles = trainFiles;
        this.evalFiles = evalFiles;
        this.train = train;
        this.eval = eval;
    }

    /** Reads a file or folder, finding the schema from the first record. */
    public static Dataset load(Path path) {
        return load(path, null);
    }

    /**
     * Reads a file or folder with the given schema (null: find it from the first record).
     *
     * @throws DataFormatException for a missing path, a folder without data files, a file that does not parse, or
     *     no schema that fits (naming the file)
     */
    public static Dataset load(Path path, RowSchema schema) {
        Objects.requireNonNull(path, "path");
        List<Path> trainFiles, evalFiles;
        if (Files.isDirectory(path)) {
            Path dir = path;
            List<Path> files = dataFiles(dir);
            if (files.isEmpty() && Files.isDirectory(path.resolve("data"))) files = dataFiles(dir = path.resolve("data"));
            if (files.isEmpty()) throw new DataFormatException(path + ": a folder without data files ("
                    + DataFiles.FORMATS + ")");
            trainFiles = files.stream().filter(f -> split(f).equals("train")).toList();
            evalFiles = files.stream().filter(f -> split(f).equals("eval")).toList();
            if (trainFiles.isEmpty() && evalFiles.isEmpty()) trainFiles = files;
            if (trainFiles.isEmpty()) throw new DataFormatException(dir + ": eval files " + names(evalFiles)
                    + " but no train files (train*" + ")");
        } else if (Files.isRegularFile(path)) {
            trainFiles = List.of(path);
            evalFiles = List.of();
        } else {
            throw new DataFormatException(path + ": no such file or folder");
        }
        Reader reader = new Reader(schema);
        Records train = reader.read(trainFiles);
        Records eval = evalFiles.isEmpty() ? null : reader.read(evalFiles);
        if (reader.schema == null) throw new DataFormatException(path + ": no records to find the schema from");
        return new Dataset(path, cacheName(path), reader.schema, trainFiles, evalFiles, train, eval);
    }

    /** The path as given. */
    public Path path() {
        return path;
    }

    /**
     * The name that keys this dataset's cached split indices: the file or folder name, cleaned, and a hash of its
     * absolute path ({@code harmless-base-sample-3fa2c1d0}).
     */
    public String name() {
        return name;
    }

    public RowSchema schema() {
        return schema;
    }

    public List<Path> trainFiles() {
        return trainFiles;
    }

    /** The eval files; empty where the eval rows come from the train files. */
    public List<Path> evalFiles() {
        return evalFiles;
    }

    /** Whether the dataset has eval files of its own. */
    public boolean hasEval() {
        return eval != null;
    }

    /** All usable rows of the train files, in file order, with the bad ones counted: the form a ptx dataset takes. */
    public Rows<Row> train() {
        return all(train);
    }

    /**
     * The rows of the train files as plain text: the unsupervised (ptx) dataset, which is not split.
     *
     * @throws IllegalArgumentException if the schema does not make {@link TextRow}s
     */
    public Rows<TextRow> texts() {
        return typed(TextRow.class, "plain text ('text'): it cannot be the unsupervised dataset");
    }

    /**
     * The rows of the train files as preference pairs, unsplit (for programs that choose rows themselves).
     *
     * @throws IllegalArgumentException if the schema does not make {@link PreferenceRow}s
     */
    public Rows<PreferenceRow> pairs() {
        return typed(PreferenceRow.class, "preference pairs");
    }

    /**
     * The prompts of the train files, unsplit: prompt-only rows as they are, the prompts of preference pairs.
     *
     * @throws IllegalArgumentException for plain text
     */
    public Rows<PromptRow> prompts() {
        if (schema instanceof BuiltInSchemas.PlainText) throw new IllegalArgumentException(path + " has schema '"
                + schema.name() + "', not prompts");
        Rows<Row> rows = train();
        List<PromptRow> out = new ArrayList<>(rows.size());
        for (Row r : rows) {
            switch (r) {
                case PromptRow p -> out.add(p);
                case PreferenceRow p -> out.add(new PromptRow(p.prompt()));
                case TextRow t -> throw new IllegalArgumentException(path + " has plain-text rows, not prompts");
            }
        }
        return new Rows<>(List.of(new Rows.Part<>(name, out, positions(rows))), 0, rows.skips());
    }

    private <R extends Row> Rows<R> typed(Class<R> type, String what) {
        Rows<Row> rows = train();
        List<R> out = new ArrayList<>(rows.size());
        for (Row r : rows) {
            if (!type.isInstance(r)) throw new IllegalArgumentException(path + " has schema '" + schema.name()
                    + "', not " + what);
            out.add(type.cast(r));
        }
        return new Rows<>(List.of(new Rows.Part<>(name, out, positions(rows))), 0, rows.skips());
    }

    private static List<RowPosition> positions(Rows<?> rows) {
        List<RowPosition> at = new ArrayList<>(rows.size());
        for (int i = 0; i < rows.size(); i++) at.add(rows.position(i));
        return at;
    }

    Records records(DataSplit.Part part) {
        return part == DataSplit.Part.TRAIN ? train : eval;
    }

    private Rows<Row> all(Records r) {
        SkipReport skips = new SkipReport();
        skips.looked(r.size());
        List<Row> rows = new ArrayList<>(r.size());
        List<RowPosition> at = new ArrayList<>(r.size());
        for (int i = 0; i < r.size(); i++) {
            if (r.rows().get(i) == null) {
                skips.skip(r.positions().get(i), r.bad().get(i));
            } else {
                rows.add(r.rows().get(i));
                at.add(r.positions().get(i));
            }
        }
        return new Rows<>(List.of(new Rows.Part<>(name, rows, at)), 0, skips);
    }

    @Override
    public String toString() {
        return "Dataset[" + path + ", " + schema.name() + ", " + train.size() + " train records"
                + (eval == null ? "" : ", " + eval.size() + " eval records") + "]";
    }

    /** Reads files into records, finding the schema from the first record when none was given. */
    private static final class Reader implements DataFiles.Sink {
        RowSchema schema;
        private List<Row> rows;
        private List<RowPosition> positions;
        private List<BadRowException> bad;

        Reader(RowSchema schema) {
            this.schema = schema;
        }

        Records read(List<Path> files) {
            rows = new ArrayList<>();
            positions = new ArrayList<>();
            bad = new ArrayList<>();
            for (Path f : files) DataFiles.read(f, this);
            return new Records(rows, positions, bad);
        }

        @Override
        public void record(RowPosition at, RawRow record) {
            if (schema == null) schema = RowSchema.detect(at.file(), record.fieldNames());
            Row row;
            try {
                row = Objects.requireNonNull(schema.map(record), () -> "schema '" + schema.name()
                        + "' returned no row for " + at);
            } catch (BadRowException e) {
                bad(at, e);
                return;
            }
            rows.add(row);
            positions.add(at);
            bad.add(null);
        }

        @Override
        public void bad(RowPosition at, BadRowException why) {
            rows.add(null);
            positions.add(at);
            bad.add(why);
        }
    }

    private static List<Path> dataFiles(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(Files::isRegularFile).filter(DataFiles::isDataFile).sorted().toList();
        } catch (IOException e) {
            throw new DataFormatException(dir + ": cannot list the folder: " + e.getMessage(), e);
        }
    }

    /** "train", "eval" or "" from a file name, as Hugging Face names split files. */
    private static String split(Path file) {
        String n = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (n.startsWith("train")) return "train";
        if (n.startsWith("test") || n.startsWith("eval") || n.startsWith("validation")) return "eval";
        return "";
    }

    private static String names(List<Path> files) {
        return files.stream().map(f -> f.getFileName().toString()).toList().toString();
    }

    private static String cacheName(Path path) {
        String base = path.getFileName() == null ? "data" : path.getFileName().toString();
        for (String ext : List.of(".gz", ".jsonl", ".json", ".parquet"))
            if (base.toLowerCase(Locale.ROOT).endsWith(ext)) base = base.substring(0, base.length() - ext.length());
        base = base.replaceAll("[^A-Za-z0-9._-]", "_");
        if (base.length() > 60) base = base.substring(0, 60);
        try {
            byte[] h = MessageDigest.getInstance("SHA-256").digest(
                    path.toAbsolutePath().normalize().toString().getBytes(StandardCharsets.UTF_8));
            return base + "-" + HexFormat.of().formatHex(h, 0, 4);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
