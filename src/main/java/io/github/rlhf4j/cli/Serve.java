package io.github.rlhf4j.cli;

import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.serve.OpenAiServer;
import io.github.rlhf4j.serve.TextGenerator;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code rlhf4j serve}: an OpenAI-compatible HTTP server for one model. */
@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Serve a model over an OpenAI-compatible HTTP API: GET /v1/models, POST /v1/completions, "
                + "POST /v1/chat/completions (\"stream\": true for server-sent events). Chat messages go through "
                + "the model's chat template, or DeepSpeed-Chat's Human/Assistant form.",
                "One generation runs at a time; other requests wait their turn. No authentication: it listens on "
                + "127.0.0.1 unless --host says otherwise. Stop it with Ctrl-C."},
        footer = {"", "Examples:",
                "  bin/rlhf4j serve --model output/step3/actor --port 8000",
                "  curl -s localhost:8000/v1/chat/completions \\",
                "       -H 'Content-Type: application/json' \\",
                "       -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 64}'"})
final class Serve implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory.")
    Path model;

    @Option(names = "--host", defaultValue = "127.0.0.1",
            description = "Address to listen on (default: ${DEFAULT-VALUE}; 0.0.0.0 = every interface).")
    String host;

    @Option(names = "--port", defaultValue = "8000", description = "Port; 0 picks a free one (default: ${DEFAULT-VALUE}).")
    int port;

    @Option(names = "--served-model-name", paramLabel = "NAME",
            description = "The model's name in the API (default: the model directory's name).")
    String name;

    @Option(names = "--max-tokens-limit", defaultValue = "1024", paramLabel = "N",
            description = "Most tokens one request may generate (default: ${DEFAULT-VALUE}).")
    int maxTokensLimit;

    @Option(names = "--max-request-bytes", defaultValue = "1048576", paramLabel = "N",
            description = "Largest request body accepted (default: ${DEFAULT-VALUE}).")
    long maxRequestBytes;

    @Option(names = "--http-threads", defaultValue = "8", paramLabel = "N",
            description = "Threads that accept requests (default: ${DEFAULT-VALUE}).")
    int httpThreads;

    @Option(names = "--num-threads", defaultValue = "0", paramLabel = "N",
            description = "CPU threads for generation; 0 = one per core (default: ${DEFAULT-VALUE}).")
    int numThreads;

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEV",
            description = "cpu or cuda:N (default: ${DEFAULT-VALUE}).")
    String device;

    @Override
    public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        OpenAiServer.Options options;
        Device dev = Device.parse(device);
        if (numThreads > 0) dev.setNumThreads(numThreads);
        try (TextGenerator g = TextGenerator.load(model, dev)) {
            try {
                options = new OpenAiServer.Options(host, port, name == null ? g.name() : name, maxTokensLimit,
                        maxRequestBytes, httpThreads);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
            }
            CountDownLatch stopped = new CountDownLatch(1);
            try (OpenAiServer server = OpenAiServer.start(g, options, line -> {
                synchronized (err) {
                    err.println(line);
                    err.flush();
                }
            })) {
                Thread hook = new Thread(stopped::countDown, "rlhf4j-serve-shutdown");
                Runtime.getRuntime().addShutdownHook(hook);
                err.printf(Locale.ROOT, "serving '%s' (%s, %,d parameters, context %d tokens; chat: %s) at %s/v1%n",
                        options.modelId(), g.model().config().modelType(), g.model().parameters().parameterCount(),
                        g.contextLength(), g.chatTemplate().isDsChat() ? "DeepSpeed-Chat's Human/Assistant form"
                                : "the model's chat template", server.uri());
                if (!loopback(host))
                    err.println("warning: listening on " + host + " without authentication: anyone who can reach "
                            + "this port can use the model");
                err.flush();
                stopped.await();
            }
        }
        return 0;
    }

    private static boolean loopback(String host) {
        try {
            return InetAddress.getByName(host).isLoopbackAddress();
        } catch (UnknownHostException e) {
            return false;
        }
    }
}
