package io.github.rlhf4j.dist;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A rank for {@link LaunchMpirunTest}, run as {@code RankProbe probe DIR ...} (the word standing where {@code train}
 * stands): writes what it learned about itself and its arguments to {@code DIR/rank-R.txt}, and exits with 3 on rank 1
 * when an argument says {@code fail-on-rank-1}.
 */
public final class RankProbe {
    private RankProbe() {}

    public static void main(String[] args) throws IOException {
        Launch.Rank r = Launch.Rank.fromEnvironment();
        String line = "rank=" + r.rank() + " size=" + r.size() + " local=" + r.localRank() + "/" + r.localSize()
                + " source=" + r.source() + " launched=" + System.getenv(Launch.LAUNCHED)
                + " omp=" + System.getenv("OMP_NUM_THREADS") + " probe=" + System.getenv("RLHF4J_PROBE")
                + " cwd=" + Path.of("").toAbsolutePath() + " args=" + String.join(" ", args);
        Path out = Path.of(args[1]).resolve("rank-" + r.rank() + ".txt");
        Path tmp = Files.writeString(out.resolveSibling(out.getFileName() + ".tmp"), line + "\n");
        Files.move(tmp, out, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        if (r.rank() == 1 && Arrays.asList(args).contains("fail-on-rank-1")) System.exit(3);
    }
}
