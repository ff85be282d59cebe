package io.github.rlhf4j;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

/** Facts about this build of rlhf4j. */
public final class Rlhf4j {
    private Rlhf4j() {}

    /** The Maven version of this build, e.g. 0.1.0-SNAPSHOT. */
    public static String version() {
        try (InputStream in = Rlhf4j.class.getResourceAsStream("rlhf4j.properties")) {
            if (in == null) return "unknown";
            Properties p = new Properties();
            p.load(in);
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }
}
