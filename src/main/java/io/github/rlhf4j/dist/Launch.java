package io.github.rlhf4j.dist;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Starts the ranks of a multi-GPU run through Open MPI's {@code mpirun}, as the {@code deepspeed} launcher does for
 * DeepSpeed-Chat's {@code train.py}: {@code single_node} runs {@code --num-gpus N} ranks on this machine,
 * {@code multi_node} runs one rank per slot of a DeepSpeed-style hostfile ({@code host slots=8} lines). Each rank
 * re-runs the same command line without the launcher's own flags ({@code --num-gpus}, {@code --hostfile}) and with
 * {@code RLHF4J_LAUNCHED=1}, so that it trains instead of launching again; it learns its place from the environment
 * ({@link Rank#fromEnvironment()}), as ranks that Slurm's {@code srun} or a Kubeflow MPIJob start do.
 *
 * <p>Every rank sees the same {@code CUDA_VISIBLE_DEVICES} and takes GPU {@link Rank#gpu local rank}, as
 * {@code torch.cuda.set_device(local_rank)} does. Ranks are not bound to cores ({@code --bind-to none}): each is a JVM
 * with OpenMP threads, and {@code OMP_NUM_THREADS} (unless already set) shares this machine's cores among a node's
 * ranks. {@code RLHF4J_MPIRUN} names another {@code mpirun}; {@code RLHF4J_MPIRUN_OPTS} adds options to it
 * (whitespace-separated, e.g. {@code --allow-run-as-root} in a container, {@code --mca btl_tcp_if_include eth0}).
 *
 * @param command the whole {@code mpirun} command line
 * @param ranks   how many ranks it starts
 */
public record Launch(List<String> command, int ranks) {
    /** Set to 1 in every rank this class starts: the rank trains instead of launching again. */
    public static final String LAUNCHED = "RLHF4J_LAUNCHED";

    /** The flags that only the launcher reads; the ranks' command lines go without them. */
    public static final Set<String> LAUNCHER_FLAGS = Set.of("--num-gpus", "--hostfile");

    /** Variables every rank needs as the launcher has them (besides RLHF4J_* and NCCL_*), when they are set. */
    private static final Set<String> EXPORTED = Set.of("JAVA_HOME", "PATH", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES",
            "OMP_NUM_THREADS");

    public Launch {
        command = List.copyOf(command);
        if (ranks < 1) throw new IllegalArgumentException("a launch needs at least one rank, not " + ranks);
    }

    /** DeepSpeed-Chat's {@code --deployment-type}. */
    public enum Deployment {
        /** One process on this machine (its GPU, or the CPU): nothing to launch. */
        SINGLE_GPU,
        /** {@code --num-gpus} ranks on this machine. */
        SINGLE_NODE,
        /** Ranks on the hosts of a hostfile. */
        MULTI_NODE;

        /** The command line's spelling: {@code single_gpu}, {@code single_node}, {@code multi_node}. */
        public String flag() {
            return name().toLowerCase(Locale.ROOT);
        }

        /** The deployment spelled {@code s}; the error names the three that exist. */
        public static Deployment parse(String s) {
            for (Deployment d : values())
                if (d.flag().equals(s)) return d;
            throw new IllegalArgumentException("--deployment-type " + s + ": expected single_gpu, single_node or "
                    + "multi_node");
        }
    }

    /** One line of a hostfile: a host and how many ranks (GPUs) it takes. */
    public record Host(String name, int slots) {
        public Host {
            if (name == null || name.isBlank() || name.chars().anyMatch(Character::isWhitespace) || name.contains(","))
                throw new IllegalArgumentException("host name '" + name + "' is empty or holds a space or a comma");
            if (slots < 1) throw new IllegalArgumentException("host " + name + ": slots=" + slots + " must be >= 1");
        }
    }

    /**
     * What the launching machine contributes to the command line.
     *
     * @param env     its environment (what is exported to the ranks, RLHF4J_MPIRUN and RLHF4J_MPIRUN_OPTS)
     * @param cpus    its cores, shared among the ranks of a node for {@code OMP_NUM_THREADS}
     * @param workDir the ranks' working directory (relative paths in the arguments resolve against it; on other
     *                nodes it must exist at the same path, as the program must)
     */
    public record Local(Map<String, String> env, int cpus, Path workDir) {
        public Local {
            env = Map.copyOf(env);
            if (cpus < 1) throw new IllegalArgumentException("cpus " + cpus + " must be >= 1");
            workDir = workDir.toAbsolutePath().normalize();
        }

        /** This process's environment, cores and working directory. */
        public static Local current() {
            return new Local(System.getenv(), Runtime.getRuntime().availableProcessors(), Path.of(""));
        }
    }

    /**
     * The launch of {@code args} (this process's command-line arguments, subcommand included: {@code train ...}) over
     * {@code numGpus} local ranks ({@code single_node}) or over the hosts of {@code hostfile} ({@code multi_node}:
     * every slot, or {@code numGpus} per host when it is above 0). Each rank runs {@code program} followed by
     * {@code args} without {@link #LAUNCHER_FLAGS}.
     *
     * @throws IllegalArgumentException for {@code single_gpu}, a missing or misplaced {@code --num-gpus} or
     *                                  {@code --hostfile}, more GPUs than {@code CUDA_VISIBLE_DEVICES} lists or than a
     *                                  host's slots, or a bad hostfile (naming the file and the line)
     * @throws IOException              when the hostfile cannot be read
     */
    public static Launch plan(Deployment deployment, int numGpus, Path hostfile, List<String> args,
                              List<String> program, Local here) throws IOException {
        if (numGpus < 0) throw new IllegalArgumentException("--num-gpus " + numGpus + " must be >= 1");
        if (program.isEmpty()) throw new IllegalArgumentException("no program to run on the ranks");
        List<Host> hosts;
        switch (deployment) {
            case SINGLE_GPU -> throw new IllegalArgumentException("--deployment-type single_gpu runs in this process; "
                    + "there is nothing to launch");
            case SINGLE_NODE -> {
                if (hostfile != null)
                    throw new IllegalArgumentException("--hostfile " + hostfile + " is for --deployment-type "
                            + "multi_node; single_node runs --num-gpus ranks on this machine");
                if (numGpus == 0)
                    throw new IllegalArgumentException("--deployment-type single_node needs --num-gpus N (N >= 1)");
                String visible = here.env().get("CUDA_VISIBLE_DEVICES");
                if (visible != null && numGpus > countDevices(visible))
                    throw new IllegalArgumentException("--num-gpus " + numGpus + " but CUDA_VISIBLE_DEVICES="
                            + visible + " shows " + countDevices(visible) + " GPU(s)");
                hosts = List.of(new Host("localhost", numGpus));
            }
            case MULTI_NODE -> {
                if (hostfile == null)
                    throw new IllegalArgumentException("--deployment-type multi_node needs --hostfile FILE "
                            + "(lines 'HOST slots=N'), or ranks started by srun or an MPIJob");
                List<Host> listed = readHostfile(hostfile);
                if (numGpus == 0) {
                    hosts = listed;
                } else {
                    hosts = new ArrayList<>();
                    for (Host h : listed) {
                        if (h.slots() < numGpus)
                            throw new IllegalArgumentException("--num-gpus " + numGpus + " per node, but hostfile "
                                    + hostfile + " gives " + h.name() + " slots=" + h.slots());
                        hosts.add(new Host(h.name(), numGpus));
                    }
                }
            }
            default -> throw new AssertionError(deployment);
        }

        int ranks = hosts.stream().mapToInt(Host::slots).sum();
        int perNode = hosts.stream().mapToInt(Host::slots).max().orElseThrow();
        List<String> cmd = new ArrayList<>();
        cmd.add(here.env().getOrDefault("RLHF4J_MPIRUN", "mpirun"));
        cmd.addAll(List.of("-np", Integer.toString(ranks), "--host", hostList(hosts)));
        // Consecutive ranks fill a host before the next (local rank = GPU), and no core binding: a rank is a JVM
        // whose OpenMP threads would all share one core if mpirun bound it.
        cmd.addAll(List.of("--map-by", "slot", "--bind-to", "none", "--wdir", here.workDir().toString()));
        cmd.addAll(List.of("-x", LAUNCHED + "=1"));
        if (!here.env().containsKey("OMP_NUM_THREADS"))
            cmd.addAll(List.of("-x", "OMP_NUM_THREADS=" + Math.max(1, here.cpus() / perNode)));
        for (String name : new TreeSet<>(here.env().keySet()))
            if (exported(name)) cmd.addAll(List.of("-x", name));
        String extra = here.env().getOrDefault("RLHF4J_MPIRUN_OPTS", "").strip();
        if (!extra.isEmpty()) cmd.addAll(List.of(extra.split("\\s+")));
        cmd.addAll(program);
        cmd.addAll(withoutLauncherFlags(args));
        return new Launch(cmd, ranks);
    }

    private static boolean exported(String name) {
        if (name.equals(LAUNCHED) || name.startsWith("RLHF4J_MPIRUN")) return false; // set above / the launcher's own
        return EXPORTED.contains(name) || name.startsWith("RLHF4J_") || name.startsWith("NCCL_");
    }

    private static String hostList(List<Host> hosts) {
        StringBuilder s = new StringBuilder();
        for (Host h : hosts) s.append(s.isEmpty() ? "" : ",").append(h.name()).append(':').append(h.slots());
        return s.toString();
    }

    /** How many devices a {@code CUDA_VISIBLE_DEVICES} value lists (indices or UUIDs, comma-separated). */
    static int countDevices(String visible) {
        if (visible.isBlank()) return 0;
        int n = 0;
        for (String s : visible.split(",")) if (!s.isBlank()) n++;
        return n;
    }

    /** {@code args} without {@link #LAUNCHER_FLAGS} and their values ({@code --num-gpus 4}, {@code --num-gpus=4}). */
    public static List<String> withoutLauncherFlags(List<String> args) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("--")) { // picocli's end of options: the rest is not ours to read
                out.addAll(args.subList(i, args.size()));
                break;
            }
            int eq = a.indexOf('=');
            String name = eq < 0 ? a : a.substring(0, eq);
            if (!LAUNCHER_FLAGS.contains(name)) {
                out.add(a);
                continue;
            }
            if (eq < 0) {
                if (i + 1 >= args.size()) throw new IllegalArgumentException(a + " needs a value");
                i++;
            }
        }
        return out;
    }

    private static final Pattern HOST_LINE = Pattern.compile("(\\S+)\\s+slots\\s*=\\s*(\\S+)");

    /**
     * The hosts of a DeepSpeed-style hostfile: one {@code HOST slots=N} per line; blank lines and {@code #} comments
     * (whole lines or line ends) are skipped. Errors name the file and the line.
     */
    public static List<Host> readHostfile(Path file) throws IOException {
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException("--hostfile " + file + ": no such file");
        return parseHostfile(file.toString(), Files.readAllLines(file));
    }

    static List<Host> parseHostfile(String file, List<String> lines) {
        Map<String, Host> hosts = new LinkedHashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            int hash = line.indexOf('#');
            String text = (hash < 0 ? line : line.substring(0, hash)).strip();
            if (text.isEmpty()) continue;
            String at = "hostfile " + file + " line " + (i + 1) + ": ";
            Matcher m = HOST_LINE.matcher(text);
            if (!m.matches())
                throw new IllegalArgumentException(at + "expected 'HOST slots=N', got '" + text + "'");
            int slots;
            try {
                slots = Integer.parseInt(m.group(2));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(at + "slots=" + m.group(2) + " is not a whole number");
            }
            Host h;
            try {
                h = new Host(m.group(1), slots);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(at + e.getMessage());
            }
            if (hosts.putIfAbsent(h.name(), h) != null)
                throw new IllegalArgumentException(at + "host " + h.name() + " is listed twice");
        }
        if (hosts.isEmpty()) throw new IllegalArgumentException("hostfile " + file + ": no 'HOST slots=N' lines");
        return List.copyOf(hosts.values());
    }

    /**
     * The command that starts {@code mainClass} in a JVM like this one: the same {@code java}, JVM options (less a
     * debugger agent, whose one port cannot serve several ranks) and class path. Other nodes must hold them at the
     * same paths (a shared file system or one container image), as the {@code deepspeed} launcher assumes of Python.
     */
    public static List<String> thisJvm(String mainClass) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments())
            if (!a.startsWith("-agentlib:jdwp") && !a.startsWith("-Xrunjdwp")) cmd.add(a);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass));
        return cmd;
    }

    /** Runs the command with this process's standard streams and returns its exit code. */
    public int run() throws IOException, InterruptedException {
        return run(Map.of());
    }

    /**
     * Runs the command with this process's standard streams and environment plus {@code extraEnv}, and returns its
     * exit code. If this JVM is stopped meanwhile, {@code mpirun} is stopped too (it passes the signal to the ranks).
     */
    public int run(Map<String, String> extraEnv) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(command).inheritIO();
        pb.environment().putAll(extraEnv);
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new IOException(command.getFirst() + " cannot be started (" + e.getMessage() + "); multi-GPU "
                    + "training needs Open MPI's mpirun on the PATH, or RLHF4J_MPIRUN naming it", e);
        }
        Thread stop = new Thread(p::destroy, "rlhf4j-stop-mpirun");
        Runtime.getRuntime().addShutdownHook(stop);
        try {
            return p.waitFor();
        } catch (InterruptedException e) {
            p.destroy();
            throw e;
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(stop);
            } catch (IllegalStateException shuttingDown) {
                // the hook is already running: it stops mpirun
            }
        }
    }

    /**
     * This process's place in a run: its rank among {@code size}, and among the {@code localSize} ranks of its node.
     * {@link #fromEnvironment()} reads it from whichever launcher started the process.
     *
     * @param source the launcher the figures come from
     */
    public record Rank(int rank, int size, int localRank, int localSize, Source source) {
        /** Which launcher's variables gave the rank. */
        public enum Source {
            /** No launcher: one process. */
            NONE,
            /** Open MPI's {@code mpirun} ({@code OMPI_COMM_WORLD_*}); also how {@link Launch} starts ranks. */
            OPEN_MPI,
            /** A PMI launcher such as MPICH's or Intel MPI's Hydra ({@code PMI_RANK}, {@code PMI_SIZE}). */
            PMI,
            /** Slurm's {@code srun} ({@code SLURM_PROCID}, {@code SLURM_LOCALID}, ... of a job step). */
            SLURM
        }

        /** One process, no launcher. */
        public static final Rank SINGLE = new Rank(0, 1, 0, 1, Source.NONE);

        public Rank {
            if (size < 1 || rank < 0 || rank >= size || localSize < 1 || localSize > size || localRank < 0
                    || localRank >= localSize)
                throw new IllegalArgumentException("rank " + rank + " of " + size + ", local rank " + localRank
                        + " of " + localSize + ": not a place in a run");
            if (source == null) throw new IllegalArgumentException("no source");
        }

        /** Whether a launcher started this process (as one rank of {@code size}). */
        public boolean launched() {
            return source != Source.NONE;
        }

        /** The rank that writes outputs and logs. */
        public boolean isRoot() {
            return rank == 0;
        }

        /** {@link #fromEnvironment(Map)} of this process. */
        public static Rank fromEnvironment() {
            return fromEnvironment(System.getenv());
        }

        /**
         * The rank that {@code env} describes, read from (first that applies) Open MPI's {@code OMPI_COMM_WORLD_RANK,
         * _SIZE, _LOCAL_RANK, _LOCAL_SIZE}; PMI's {@code PMI_RANK, PMI_SIZE} with Hydra's {@code MPI_LOCALRANKID,
         * MPI_LOCALNRANKS} or Slurm's local figures; a Slurm job step's {@code SLURM_PROCID, SLURM_STEP_NUM_TASKS
         * (or SLURM_NTASKS), SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE (or SLURM_TASKS_PER_NODE), SLURM_NODEID};
         * else {@link #SINGLE}. A Slurm batch script (no job step: no {@code SLURM_STEP_ID}) is one process, whatever
         * its {@code SLURM_NTASKS}: the ranks are the tasks that {@code srun} starts. {@code PMIX_RANK}, where set,
         * must agree.
         *
         * @throws IllegalArgumentException when the variables are incomplete, not numbers or inconsistent, naming them
         */
        public static Rank fromEnvironment(Map<String, String> env) {
            Env e = new Env(env);
            Rank r;
            if (e.hasAny("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                    "OMPI_COMM_WORLD_LOCAL_SIZE")) {
                r = e.rank(Source.OPEN_MPI, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                        "OMPI_COMM_WORLD_LOCAL_RANK", e.integer("OMPI_COMM_WORLD_LOCAL_RANK"),
                        "OMPI_COMM_WORLD_LOCAL_SIZE", e.integer("OMPI_COMM_WORLD_LOCAL_SIZE"));
            } else if (e.hasAny("PMI_RANK", "PMI_SIZE")) {
                if (e.hasAny("MPI_LOCALRANKID", "MPI_LOCALNRANKS")) {
                    r = e.rank(Source.PMI, "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", e.integer("MPI_LOCALRANKID"),
                            "MPI_LOCALNRANKS", e.integer("MPI_LOCALNRANKS"));
                } else if (e.slurmStep()) {
                    r = e.rank(Source.PMI, "PMI_RANK", "PMI_SIZE", "SLURM_LOCALID", e.integer("SLURM_LOCALID"),
                            e.slurmTasksPerNodeName(), e.slurmLocalSize());
                } else {
                    throw new IllegalArgumentException("launcher environment: PMI_RANK/PMI_SIZE are set but neither "
                            + "MPI_LOCALRANKID/MPI_LOCALNRANKS nor a Slurm job step says which of this node's GPUs "
                            + "the rank uses");
                }
            } else if (e.slurmStep()) {
                String sizeName = env.containsKey("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS";
                r = e.rank(Source.SLURM, "SLURM_PROCID", sizeName, "SLURM_LOCALID", e.integer("SLURM_LOCALID"),
                        e.slurmTasksPerNodeName(), e.slurmLocalSize());
                int listed = e.slurmTasksPerNode().stream().mapToInt(Integer::intValue).sum();
                if (listed != r.size())
                    throw new IllegalArgumentException("launcher environment (SLURM): " + e.slurmTasksPerNodeName()
                            + "=" + env.get(e.slurmTasksPerNodeName()) + " adds up to " + listed + " tasks but "
                            + sizeName + "=" + r.size());
            } else if (env.containsKey("PMIX_RANK")) {
                throw new IllegalArgumentException("launcher environment: PMIX_RANK=" + env.get("PMIX_RANK")
                        + " is set but nothing gives the world size (OMPI_COMM_WORLD_SIZE, PMI_SIZE or a Slurm job "
                        + "step's SLURM_STEP_NUM_TASKS)");
            } else {
                if ("1".equals(env.get(LAUNCHED)))
                    throw new IllegalArgumentException("launcher environment: " + LAUNCHED + "=1 says mpirun started "
                            + "this process, but no OMPI_COMM_WORLD_*, PMI_* or SLURM_* variables give its rank");
                return SINGLE;
            }
            if (env.containsKey("PMIX_RANK") && e.integer("PMIX_RANK") != r.rank())
                throw new IllegalArgumentException("launcher environment: PMIX_RANK=" + env.get("PMIX_RANK")
                        + " disagrees with rank " + r.rank() + " from " + r.source());
            return r;
        }

        /**
         * The CUDA device this rank uses: its local rank among the GPUs that {@code CUDA_VISIBLE_DEVICES} shows (all of
         * them when it is unset), or device 0 when it shows exactly one (the launcher gave each rank its own, as
         * {@code srun --gpus-per-task=1} does).
         *
         * @throws IllegalArgumentException when fewer GPUs are visible than the node has ranks
         */
        public int gpu(Map<String, String> env) {
            String visible = env.get("CUDA_VISIBLE_DEVICES");
            if (visible == null) return localRank;
            int n = countDevices(visible);
            if (n == 1) return 0;
            if (localRank < n) return localRank;
            throw new IllegalArgumentException("local rank " + localRank + " of " + localSize + " on this node, but "
                    + "CUDA_VISIBLE_DEVICES=" + visible + " shows " + n + " GPU(s)");
        }
    }

    /** Reading launcher variables, with errors that name them. */
    private record Env(Map<String, String> env) {
        boolean hasAny(String... names) {
            for (String n : names) if (env.containsKey(n)) return true;
            return false;
        }

        int integer(String name) {
            String v = env.get(name);
            if (v == null) throw new IllegalArgumentException("launcher environment: " + name + " is not set");
            try {
                return Integer.parseInt(v.strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("launcher environment: " + name + "=" + v
                        + " is not a whole number");
            }
        }

        Rank rank(Rank.Source source, String rankName, String sizeName, String localRankName, int localRank,
                  String localSizeName, int localSize) {
            int rank = integer(rankName), size = integer(sizeName);
            String at = "launcher environment (" + source + "): ";
            if (size < 1) throw new IllegalArgumentException(at + sizeName + "=" + size + " must be >= 1");
            if (rank < 0 || rank >= size)
                throw new IllegalArgumentException(at + rankName + "=" + rank + " is outside 0.." + (size - 1)
                        + " (" + sizeName + "=" + size + ")");
            if (localSize < 1 || localSize > size)
                throw new IllegalArgumentException(at + localSizeName + " gives " + localSize + " ranks on this "
                        + "node, outside 1.." + size + " (" + sizeName + "=" + size + ")");
            if (localRank < 0 || localRank >= localSize)
                throw new IllegalArgumentException(at + localRankName + "=" + localRank + " is outside 0.."
                        + (localSize - 1) + " (" + localSizeName + " gives " + localSize + " on this node)");
            return new Rank(rank, size, localRank, localSize, source);
        }

        /** A task of a job step that srun started; a batch script has the job's variables but no step. */
        boolean slurmStep() {
            return env.containsKey("SLURM_PROCID") && hasAny("SLURM_STEP_ID", "SLURM_STEPID");
        }

        String slurmTasksPerNodeName() {
            return env.containsKey("SLURM_STEP_TASKS_PER_NODE") ? "SLURM_STEP_TASKS_PER_NODE" : "SLURM_TASKS_PER_NODE";
        }

        /** This node's entry of Slurm's tasks-per-node list, indexed by SLURM_NODEID. */
        int slurmLocalSize() {
            String name = slurmTasksPerNodeName();
            List<Integer> perNode = slurmTasksPerNode();
            int node = env.containsKey("SLURM_NODEID") ? integer("SLURM_NODEID") : 0;
            if (node < 0 || node >= perNode.size())
                throw new IllegalArgumentException("launcher environment: SLURM_NODEID=" + node + " but " + name
                        + "=" + env.get(name) + " lists " + perNode.size() + " node(s)");
            return perNode.get(node);
        }

        /** Slurm's tasks per node, one entry a node: {@code 8(x2)} is 8, 8; {@code 2,1} is 2, 1. */
        List<Integer> slurmTasksPerNode() {
            String name = slurmTasksPerNodeName();
            String list = env.get(name);
            if (list == null) throw new IllegalArgumentException("launcher environment: " + name + " is not set");
            List<Integer> perNode = new ArrayList<>();
            Matcher m = Pattern.compile("(\\d+)(?:\\(x(\\d+)\\))?").matcher("");
            for (String part : list.split(",")) {
                if (!m.reset(part.strip()).matches())
                    throw new IllegalArgumentException("launcher environment: " + name + "=" + list
                            + ": expected entries like 8 or 8(x2)");
                int repeat = m.group(2) == null ? 1 : Integer.parseInt(m.group(2));
                for (int k = 0; k < repeat; k++) perNode.add(Integer.parseInt(m.group(1)));
            }
            return perNode;
        }
    }
}
