package io.github.rlhf4j.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.github.rlhf4j.cli.Main;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * The files under {@code deploy/}: the Slurm scripts pass {@code bash -n} and, run with a stand-in {@code srun},
 * start a {@code bin/rlhf4j train} command line that the CLI accepts; the Kubeflow MPIJob manifests carry what the MPI
 * Operator requires, consistent with each scenario's GPU count, and their {@code train} command lines parse too; the
 * Dockerfile builds the image the manifests name, from a CUDA 13 runtime. A flag that {@code train} does not have
 * fails here.
 */
class DeployFilesTest {
    /** The t9k example's three scenarios: file stem, nodes, GPUs a node, DS-Chat's deployment type. */
    record Scenario(String name, int nodes, int gpusPerNode, String deployment) {
        int gpus() {
            return nodes * gpusPerNode;
        }
    }

    static final List<Scenario> SCENARIOS = List.of(
            new Scenario("opt-1.3b-350m-1gpu", 1, 1, "single_gpu"),
            new Scenario("opt-13b-4gpu", 1, 4, "single_node"),
            new Scenario("opt-66b-2x8gpu", 2, 8, "multi_node"));

    static final Path DEPLOY = Path.of("deploy");
    static final YAMLMapper YAML = new YAMLMapper();

    @TempDir
    Path tmp;

    @BeforeAll
    static void fromTheRepositoryRoot() {
        assertTrue(Files.isDirectory(DEPLOY), "deploy/ not found from " + Path.of("").toAbsolutePath()
                + " (Maven runs tests in the repository root)");
    }

    @Test
    void eachScenarioHasAnSbatchScriptAndAManifestAndNothingElseIsThere() throws IOException {
        Set<String> names = new TreeSet<>();
        for (Scenario s : SCENARIOS) names.add(s.name());
        assertEquals(names, stems(DEPLOY.resolve("slurm"), ".sbatch"));
        assertEquals(names, stems(DEPLOY.resolve("kubernetes"), ".yaml"));
    }

    private static Set<String> stems(Path dir, String ext) throws IOException {
        Set<String> out = new TreeSet<>();
        try (Stream<Path> files = Files.list(dir)) {
            files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(ext))
                    .forEach(n -> out.add(n.substring(0, n.length() - ext.length())));
        }
        return out;
    }

    // ---- Slurm ------------------------------------------------------------------------------------------------------

    private static Path sbatch(Scenario s) {
        return DEPLOY.resolve("slurm").resolve(s.name() + ".sbatch");
    }

    @Test
    void sbatchScriptsPassBashN() throws Exception {
        for (Scenario s : SCENARIOS) {
            Run r = run(List.of("bash", "-n", sbatch(s).toString()), Map.of());
            assertEquals(0, r.exit(), sbatch(s) + ": bash -n says\n" + r.output());
        }
    }

    @Test
    void sbatchHeadersAskForOneTaskPerGpuOfTheScenario() throws IOException {
        for (Scenario s : SCENARIOS) {
            Map<String, String> h = new HashMap<>();
            for (String line : Files.readAllLines(sbatch(s))) {
                Matcher m = Pattern.compile("#SBATCH\\s+--([a-z-]+)(?:=(\\S+))?.*").matcher(line);
                if (m.matches()) h.put(m.group(1), m.group(2) == null ? "" : m.group(2));
            }
            String at = sbatch(s) + ": ";
            assertEquals(Integer.toString(s.nodes()), h.get("nodes"), at + "--nodes");
            assertEquals(Integer.toString(s.gpusPerNode()), h.get("ntasks-per-node"), at + "--ntasks-per-node");
            assertEquals(Integer.toString(s.gpusPerNode()), h.get("gpus-per-node"), at + "--gpus-per-node");
            for (String key : List.of("cpus-per-task", "mem", "time", "job-name"))
                assertTrue(h.containsKey(key), at + "no #SBATCH --" + key);
        }
    }

    @Test
    void sbatchScriptsStartTrainCommandLinesThatTheCliAccepts() throws Exception {
        Path stubs = Files.createDirectories(tmp.resolve("stubs"));
        Path srun = stubs.resolve("srun");
        Files.writeString(srun, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$SRUN_ARGS\"\n");
        assertTrue(srun.toFile().setExecutable(true));
        Path home = Files.createDirectories(tmp.resolve("rlhf4j/target"));
        Files.writeString(home.resolve("rlhf4j-0.1.0-SNAPSHOT.jar"), "");
        for (Scenario s : SCENARIOS) {
            Path argsFile = tmp.resolve(s.name() + ".args");
            Map<String, String> env = Map.of("PATH", stubs + ":/usr/bin:/bin", "RLHF4J_HOME", home.getParent().toString(),
                    "OUTPUT", tmp.resolve("out-" + s.name()).toString(), "SRUN_ARGS", argsFile.toString());
            Run r = run(List.of("bash", sbatch(s).toString()), env);
            assertEquals(0, r.exit(), sbatch(s) + " with a stand-in srun:\n" + r.output());
            List<String> argv = List.of(Files.readString(argsFile, StandardCharsets.UTF_8).split("\0"));
            int program = argv.indexOf(home.getParent().resolve("bin/rlhf4j").toString());
            assertTrue(program > 0, sbatch(s) + ": srun does not run $RLHF4J_HOME/bin/rlhf4j: " + argv);
            List<String> srunOptions = argv.subList(0, program);
            assertTrue(srunOptions.contains("--kill-on-bad-exit=1"), sbatch(s) + ": " + srunOptions);
            if (s.gpus() > 1)  // the ranks must join one MPI world
                assertTrue(srunOptions.stream().anyMatch(o -> o.startsWith("--mpi=")), sbatch(s) + ": " + srunOptions);
            checkTrain(sbatch(s), s, argv.subList(program + 1, argv.size()));
        }
    }

    @Test
    void sbatchScriptsStopBeforeSrunWithoutABuiltJar() throws Exception {
        Path stubs = Files.createDirectories(tmp.resolve("stubs"));
        Path srun = stubs.resolve("srun");
        Files.writeString(srun, "#!/bin/sh\necho srun ran >&2\nexit 9\n");
        assertTrue(srun.toFile().setExecutable(true));
        Run r = run(List.of("bash", sbatch(SCENARIOS.getFirst()).toString()), Map.of("PATH", stubs + ":/usr/bin:/bin",
                "RLHF4J_HOME", tmp.toString(), "OUTPUT", tmp.resolve("out").toString()));
        assertEquals(1, r.exit(), r.output());
        assertTrue(r.output().contains("no rlhf4j jar under " + tmp + "/target: run bin/rlhf4j selftest"), r.output());
    }

    // ---- Kubernetes ---------------------------------------------------------------------------------------------

    private static Path manifest(Scenario s) {
        return DEPLOY.resolve("kubernetes").resolve(s.name() + ".yaml");
    }

    @Test
    void mpiJobsCarryWhatTheMpiOperatorRequires() throws IOException {
        String image = dockerImage();
        for (Scenario s : SCENARIOS) {
            Path f = manifest(s);
            JsonNode job = YAML.readTree(f.toFile());
            assertEquals("kubeflow.org/v2beta1", text(f, job, "apiVersion"));
            assertEquals("MPIJob", text(f, job, "kind"));
            assertTrue(text(f, job, "metadata.name").matches("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"),
                    f + ": metadata.name must be a DNS-1123 label");
            assertEquals(s.gpusPerNode(), node(f, job, "spec.slotsPerWorker").asInt(), f + ": spec.slotsPerWorker");
            assertTrue(Set.of("None", "Running", "All").contains(text(f, job, "spec.runPolicy.cleanPodPolicy")),
                    f + ": spec.runPolicy.cleanPodPolicy");
            JsonNode specs = node(f, job, "spec.mpiReplicaSpecs");
            assertEquals(Set.of("Launcher", "Worker"), fieldNames(specs), f + ": spec.mpiReplicaSpecs");
            assertEquals(1, node(f, specs, "Launcher.replicas").asInt(), f + ": Launcher.replicas");
            assertEquals(s.nodes(), node(f, specs, "Worker.replicas").asInt(), f + ": Worker.replicas");
            for (String role : List.of("Launcher", "Worker")) {
                JsonNode c = node(f, specs, role + ".template.spec.containers").path(0);
                assertFalse(c.path("name").asText().isEmpty(), f + ": " + role + " container has no name");
                assertEquals(image, c.path("image").asText(), f + ": " + role + " image");
                assertTrue(c.path("command").isArray() && !c.path("command").isEmpty(), f + ": " + role + " command");
            }
            JsonNode worker = node(f, specs, "Worker.template.spec");
            JsonNode w = worker.path("containers").path(0);
            assertEquals(s.gpusPerNode(), w.path("resources").path("limits").path("nvidia.com/gpu").asInt(),
                    f + ": Worker limits nvidia.com/gpu");
            assertEquals("/usr/sbin/sshd", w.path("command").path(0).asText(), f + ": v2beta1 workers run sshd");
            Map<String, JsonNode> volumes = new HashMap<>();
            for (JsonNode v : worker.path("volumes")) volumes.put(v.path("name").asText(), v);
            Map<String, JsonNode> mountedAt = new HashMap<>();
            for (JsonNode m : w.path("volumeMounts")) {
                JsonNode v = volumes.get(m.path("name").asText());
                assertTrue(v != null, f + ": volumeMount " + m.path("name").asText() + " names no volume");
                mountedAt.put(m.path("mountPath").asText(), v);
            }
            assertEquals("Memory", mountedAt.getOrDefault("/dev/shm", YAML.createObjectNode())
                    .path("emptyDir").path("medium").asText(), f + ": /dev/shm must be a memory emptyDir");
            for (String dir : List.of("/workspace/models", "/workspace/data", "/workspace/output"))
                assertFalse(mountedAt.getOrDefault(dir, YAML.createObjectNode()).path("persistentVolumeClaim")
                        .path("claimName").asText().isEmpty(), f + ": " + dir + " must be a PVC");
        }
    }

    @Test
    void mpiJobLaunchersRunOneRankPerGpuOfTrainCommandLinesThatTheCliAccepts() throws IOException {
        for (Scenario s : SCENARIOS) {
            Path f = manifest(s);
            JsonNode specs = node(f, YAML.readTree(f.toFile()), "spec.mpiReplicaSpecs");
            List<String> cmd = new ArrayList<>();
            node(f, specs, "Launcher.template.spec.containers").path(0).path("command").forEach(a -> cmd.add(a.asText()));
            assertEquals("mpirun", cmd.getFirst(), f.toString());
            assertEquals(Integer.toString(s.gpus()), cmd.get(cmd.indexOf("-np") + 1), f + ": mpirun -np");
            int program = cmd.indexOf("/opt/rlhf4j/bin/rlhf4j");
            assertTrue(program > 0, f + ": the launcher does not run /opt/rlhf4j/bin/rlhf4j");
            CommandLine.ParseResult train = checkTrain(f, s, cmd.subList(program + 1, cmd.size()));

            // every path the ranks read or write lies on a volume of the worker pods
            List<String> mounts = new ArrayList<>();
            node(f, specs, "Worker.template.spec.containers").path(0).path("volumeMounts")
                    .forEach(m -> mounts.add(m.path("mountPath").asText() + "/"));
            List<Object> paths = new ArrayList<>(List.of(train.matchedOptionValue("--actor-model", Path.of("")),
                    train.matchedOptionValue("--reward-model", Path.of("")),
                    train.matchedOptionValue("--output-dir", Path.of(""))));
            paths.addAll(train.matchedOptionValue("--data-path", List.<Path>of()));
            for (Object p : paths)
                assertTrue(mounts.stream().anyMatch(m -> p.toString().startsWith(m)), f + ": " + p + " is on none of "
                        + mounts);
        }
    }

    // ---- Docker -------------------------------------------------------------------------------------------------

    private static final Path DOCKERFILE = DEPLOY.resolve("docker/Dockerfile");

    /** The image the Dockerfile's instructions build: {@code docker build ... -t IMAGE .}. */
    private static String dockerImage() throws IOException {
        Matcher m = Pattern.compile("(?m)^#\\s+docker build -f deploy/docker/Dockerfile -t (\\S+) \\.$")
                .matcher(Files.readString(DOCKERFILE));
        assertTrue(m.find(), DOCKERFILE + ": no '# docker build -f deploy/docker/Dockerfile -t IMAGE .' line");
        return m.group(1);
    }

    @Test
    void theDockerfileBuildsOnACuda13RuntimeWhatTheRanksNeed() throws IOException {
        List<String> lines = Files.readAllLines(DOCKERFILE);
        Map<String, String> args = new HashMap<>();
        List<String> froms = new ArrayList<>();
        int lastFrom = -1;
        for (int i = 0; i < lines.size(); i++) {
            String l = lines.get(i);
            Matcher arg = Pattern.compile("ARG (\\w+)=(\\S+)").matcher(l);
            if (froms.isEmpty() && arg.matches()) args.put(arg.group(1), arg.group(2));
            if (l.startsWith("FROM ")) {
                String image = l.substring(5).split("\\s+")[0];
                for (var e : args.entrySet()) image = image.replace("${" + e.getKey() + "}", e.getValue());
                froms.add(image);
                lastFrom = i;
            }
        }
        assertFalse(froms.isEmpty(), DOCKERFILE + ": no FROM");
        String base = froms.getLast();
        Matcher cuda = Pattern.compile("nvidia/cuda:(13)\\.(\\d+)\\.\\d+-runtime-ubuntu\\d+\\.\\d+").matcher(base);
        assertTrue(cuda.matches(), DOCKERFILE + ": the image's base " + base + " is not a CUDA 13 runtime");
        String runStage = String.join("\n", lines.subList(lastFrom, lines.size()));
        for (String pkg : List.of("openmpi-bin", "openssh-server", "libnccl2",
                "libcublas-" + cuda.group(1) + "-" + cuda.group(2)))
            assertTrue(Pattern.compile("\\b" + Pattern.quote(pkg) + "\\b").matcher(runStage).find(),
                    DOCKERFILE + ": the image does not install " + pkg);
        assertTrue(runStage.contains("temurin-25"), DOCKERFILE + ": no JDK 25 in the image");
        // what the build copies from the context is in the repository
        for (String l : lines) {
            Matcher copy = Pattern.compile("COPY (?!--)(.+) (\\S+)").matcher(l);
            if (copy.matches())
                for (String src : copy.group(1).trim().split("\\s+"))
                    assertTrue(Files.exists(Path.of(src)), DOCKERFILE + ": COPY " + src + ": not in the repository");
        }
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    /**
     * Parses {@code train ARGS} with the real CLI, without running it, and checks the scenario's deployment type and
     * steps. An unknown flag fails the test (picocli rejects it).
     */
    private static CommandLine.ParseResult checkTrain(Path file, Scenario s, List<String> args) {
        assertEquals("train", args.getFirst(), file + ": " + args);
        CommandLine.ParseResult top;
        try {
            top = new CommandLine(new Main()).parseArgs(args.toArray(String[]::new));
        } catch (CommandLine.ParameterException e) {
            throw new AssertionError(file + ": `bin/rlhf4j " + String.join(" ", args) + "` does not parse: "
                    + e.getMessage(), e);
        }
        CommandLine.ParseResult train = top.subcommand();
        assertEquals("train", train.commandSpec().name(), file.toString());
        assertEquals(s.deployment(), train.matchedOptionValue("--deployment-type", "(none)"), file + ": --deployment-type");
        assertEquals(List.of(1, 2, 3), train.matchedOptionValue("--step", List.of()), file + ": --step");
        return train;
    }

    @Test
    void theCliParseRejectsAFlagThatTrainDoesNotHave() {
        // the control for checkTrain: were unknown flags accepted, the checks above would prove nothing
        AssertionError e = assertThrows(AssertionError.class, () -> checkTrain(Path.of("x"), SCENARIOS.getFirst(),
                List.of("train", "--step", "1", "2", "3", "--deployment-type", "single_gpu", "--no-such-flag")));
        assertTrue(e.getMessage().contains("does not parse: Unknown option: '--no-such-flag'"), e.getMessage());
    }

    private static JsonNode node(Path file, JsonNode root, String path) {
        JsonNode n = root;
        for (String key : path.split("\\.")) {
            n = n.path(key);
            if (n.isMissingNode()) fail(file + ": no " + path);
        }
        return n;
    }

    private static String text(Path file, JsonNode root, String path) {
        return node(file, root, path).asText();
    }

    private static Set<String> fieldNames(JsonNode n) {
        Set<String> out = new TreeSet<>();
        n.fieldNames().forEachRemaining(out::add);
        return out;
    }

    record Run(int exit, String output) {}

    private static Run run(List<String> command, Map<String, String> env) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        if (!env.isEmpty()) {
            pb.environment().clear();
            pb.environment().putAll(env);
        }
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        return new Run(p.waitFor(), out);
    }
}
