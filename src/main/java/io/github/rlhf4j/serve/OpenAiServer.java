package io.github.rlhf4j.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.github.rlhf4j.data.ChatTemplate;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.model.ModelFormatException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * An OpenAI-compatible HTTP server for one model, on the JDK's own {@code com.sun.net.httpserver}:
 * {@code GET /v1/models}, {@code POST /v1/completions} and {@code POST /v1/chat/completions}, with
 * {@code "stream": true} answered as server-sent events in OpenAI's chunk format and ended by {@code data: [DONE]}.
 *
 * <p>Fields: {@code model} (optional; when given it must name the served model), {@code prompt} (a string, a list
 * of one string, or a list of token ids) or {@code messages} (rendered through the model's chat template, or
 * DeepSpeed-Chat's Human/Assistant form), {@code max_tokens} (chat also {@code max_completion_tokens}),
 * {@code temperature} (0 = greedy), {@code top_p}, {@code seed}, {@code stop} (a string or up to 4), {@code n}
 * (1 only), {@code stream}, {@code stream_options.include_usage}, and vLLM's extensions {@code top_k},
 * {@code repetition_penalty} and {@code ignore_eos}. Replies carry {@code usage} token counts. Fields this server
 * cannot honour ({@code logprobs}, {@code echo}, {@code best_of}, penalties, {@code tools}, ...) are refused
 * with a 400 rather than ignored; unknown fields are ignored, as OpenAI's clients send many.
 *
 * <p>Errors are OpenAI's shape, {@code {"error": {"message", "type", "param", "code"}}}: 400 for bad JSON, missing
 * fields, wrong types and values out of range, a prompt that does not fit the context
 * ({@code context_length_exceeded}) or a max_tokens over the server's limit; 404 for unknown routes and models;
 * 405 for a wrong method; 413 for a body over the size limit.
 *
 * <p><b>One generation at a time.</b> Requests are accepted concurrently, but generation runs under one lock, so
 * they are served in arrival order, each with the whole machine (batching concurrent requests is future work).
 * There is no authentication: the server binds to 127.0.0.1 unless told otherwise.
 */
public final class OpenAiServer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_STOP_STRINGS = 4;

    /**
     * Where to listen and what to allow.
     *
     * @param host address to bind (127.0.0.1: this machine only)
     * @param port port; 0 picks a free one
     * @param modelId the name clients use for the model ({@code model} field, {@code /v1/models})
     * @param maxTokensLimit the most tokens one request may ask to generate
     * @param maxRequestBytes the largest request body accepted
     * @param threads HTTP worker threads (requests beyond the one generating wait for the lock)
     */
    public record Options(String host, int port, String modelId, int maxTokensLimit, long maxRequestBytes,
                          int threads) {
        public Options {
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(modelId, "modelId");
            if (port < 0 || port > 65535) throw new IllegalArgumentException("port " + port + " is not in 0..65535");
            if (maxTokensLimit <= 0) throw new IllegalArgumentException("maxTokensLimit must be > 0");
            if (maxRequestBytes <= 0) throw new IllegalArgumentException("maxRequestBytes must be > 0");
            if (threads <= 0) throw new IllegalArgumentException("threads must be > 0");
        }

        /** 127.0.0.1:8000, 1024 tokens, 1 MiB bodies, 8 threads. */
        public static Options defaults(String modelId) {
            return new Options("127.0.0.1", 8000, modelId, 1024, 1 << 20, 8);
        }

        public Options withPort(int p) {
            return new Options(host, p, modelId, maxTokensLimit, maxRequestBytes, threads);
        }
    }

    private final TextGenerator generator;
    private final Options options;
    private final Consumer<String> log;
    private final HttpServer server;
    private final ExecutorService executor;
    private final ReentrantLock generating = new ReentrantLock(true);
    private final long created = System.currentTimeMillis() / 1000;
    private final AtomicInteger workers = new AtomicInteger();
    private volatile boolean closing;

    private OpenAiServer(TextGenerator generator, Options options, Consumer<String> log) throws IOException {
        this.generator = generator;
        this.options = options;
        this.log = log;
        this.server = HttpServer.create(new InetSocketAddress(options.host(), options.port()), 64);
        this.executor = Executors.newFixedThreadPool(options.threads(), r -> {
            Thread t = new Thread(r, "rlhf4j-http-" + workers.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        server.setExecutor(executor);
        server.createContext("/", this::handle);
    }

    /**
     * Starts serving {@code generator} (which stays the caller's to close, after this server). {@code log} gets one
     * line per request (may be null).
     */
    public static OpenAiServer start(TextGenerator generator, Options options, Consumer<String> log)
            throws IOException {
        OpenAiServer s = new OpenAiServer(Objects.requireNonNull(generator, "generator"),
                Objects.requireNonNull(options, "options"), log == null ? line -> {} : log);
        s.server.start();
        return s;
    }

    /** The bound address (with the real port when 0 was asked for). */
    public InetSocketAddress address() {
        return server.getAddress();
    }

    /** {@code http://host:port} of this server. */
    public URI uri() {
        InetSocketAddress a = address();
        String host = a.getAddress().getHostAddress();
        if (host.contains(":")) host = "[" + host + "]";
        return URI.create("http://" + host + ":" + a.getPort());
    }

    /**
     * Stops accepting requests, ends a running generation at its next piece of text (its request gets a 503, or
     * an error event when streaming) and waits for it, so the model can be closed as soon as this returns.
     */
    @Override
    public void close() {
        closing = true;
        server.stop(0);
        generating.lock(); // the running generation, if any, has ended
        try {
            executor.shutdownNow();
        } finally {
            generating.unlock();
        }
        try {
            executor.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private ApiException shuttingDown() {
        return new ApiException(503, "server_error", "the server is shutting down", null, null);
    }

    // ---- routing ------------------------------------------------------------------------------------------------

    private void handle(HttpExchange ex) {
        long start = System.nanoTime();
        String method = ex.getRequestMethod(), path = ex.getRequestURI().getPath();
        int[] status = {200};
        String detail = "";
        try {
            detail = route(ex, method, path, status);
        } catch (ApiException e) {
            status[0] = e.status;
            detail = e.getMessage();
            if (e.allow != null) ex.getResponseHeaders().set("Allow", e.allow);
            sendError(ex, e);
        } catch (RuntimeException | IOException e) {
            status[0] = 500;
            detail = e.toString();
            sendError(ex, new ApiException(500, "server_error", "internal error: " + e.getMessage(), null, null));
        } finally {
            ex.close();
            log.accept(String.format(Locale.ROOT, "%s %s %d %.0f ms%s", method, path, status[0],
                    (System.nanoTime() - start) / 1e6, detail.isEmpty() ? "" : " " + detail));
        }
    }

    private String route(HttpExchange ex, String method, String path, int[] status) throws IOException {
        String models = "/v1/models/";
        switch (path) {
            case "/v1/models" -> {
                allow(method, "GET");
                ObjectNode list = JSON.createObjectNode().put("object", "list");
                list.putArray("data").add(modelCard());
                sendJson(ex, 200, list);
                return "";
            }
            case "/v1/completions" -> {
                allow(method, "POST");
                return completion(ex, body(ex), false, status);
            }
            case "/v1/chat/completions" -> {
                allow(method, "POST");
                return completion(ex, body(ex), true, status);
            }
            case "/health" -> {
                allow(method, "GET");
                sendJson(ex, 200, JSON.createObjectNode().put("status", "ok"));
                return "";
            }
            default -> {
                if (path.startsWith(models)) {
                    allow(method, "GET");
                    String id = path.substring(models.length());
                    if (!id.equals(options.modelId())) throw modelNotFound(id);
                    sendJson(ex, 200, modelCard());
                    return "";
                }
                throw new ApiException(404, "invalid_request_error", "Invalid URL (" + method + " " + path
                        + "): this server has GET /v1/models, POST /v1/completions and POST /v1/chat/completions",
                        null, "unknown_url");
            }
        }
    }

    private static void allow(String method, String allowed) {
        if (!method.equals(allowed))
            throw new ApiException(405, "invalid_request_error", "Method " + method + " is not allowed here; use "
                    + allowed, null, "method_not_allowed").allowing(allowed);
    }

    private ObjectNode modelCard() {
        return JSON.createObjectNode().put("id", options.modelId()).put("object", "model").put("created", created)
                .put("owned_by", "rlhf4j").put("max_model_len", generator.contextLength());
    }

    private ApiException modelNotFound(String id) {
        return new ApiException(404, "invalid_request_error", "The model '" + id + "' does not exist; this server "
                + "serves '" + options.modelId() + "'", "model", "model_not_found");
    }

    // ---- requests -----------------------------------------------------------------------------------------------

    private RequestFields body(HttpExchange ex) throws IOException {
        long max = options.maxRequestBytes();
        String declared = ex.getRequestHeaders().getFirst("Content-Length");
        if (declared != null) {
            long n;
            try {
                n = Long.parseLong(declared.trim());
            } catch (NumberFormatException e) {
                throw ApiException.invalid("bad Content-Length header: " + declared, null);
            }
            if (n > max) throw tooLarge(n + " bytes");
        }
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (InputStream in = ex.getRequestBody()) {
            byte[] chunk = new byte[8192];
            for (int r; (r = in.read(chunk)) > 0; ) {
                buf.write(chunk, 0, r);
                if (buf.size() > max) throw tooLarge("more than " + max + " bytes");
            }
        }
        if (buf.size() == 0)
            throw ApiException.invalid("the request has no body; send a JSON object", null);
        JsonNode node;
        try {
            node = JSON.readTree(buf.toByteArray());
        } catch (JsonProcessingException e) {
            throw ApiException.invalid("We could not parse the JSON body of your request: " + e.getOriginalMessage()
                    + (e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ", column "
                    + e.getLocation().getColumnNr() + ")"), null, "invalid_json");
        }
        if (!(node instanceof ObjectNode o))
            throw ApiException.invalid("the request body must be a JSON object, not " + node.getNodeType()
                    .toString().toLowerCase(Locale.ROOT), null, "invalid_json");
        return new RequestFields(o);
    }

    private ApiException tooLarge(String size) {
        return new ApiException(413, "invalid_request_error", "the request body (" + size + ") exceeds this "
                + "server's limit of " + options.maxRequestBytes() + " bytes", null, "request_too_large");
    }

    /** Ends a generation from its text callback when the server closes. */
    private static final class Cancelled extends RuntimeException {
        Cancelled() {
            super(null, null, false, false);
        }
    }

    /** A validated request, ready to generate. */
    private record Job(int[] prompt, GenerationConfig config, List<String> stops, boolean stream, boolean usage) {}

    private String completion(HttpExchange ex, RequestFields f, boolean chat, int[] status) throws IOException {
        Job job = chat ? chatJob(f) : completionJob(f);
        String id = (chat ? "chatcmpl-" : "cmpl-") + HexFormat.of().formatHex(randomBytes(12));
        long createdAt = System.currentTimeMillis() / 1000;
        generating.lock();
        try {
            if (closing) throw shuttingDown();
            if (!job.stream()) {
                TextGenerator.Completion c;
                try {
                    c = generator.complete(job.prompt(), job.config(), job.stops(), piece -> {
                        if (closing) throw new Cancelled();
                    });
                } catch (Cancelled e) {
                    throw shuttingDown();
                }
                ObjectNode reply = envelope(id, chat ? "chat.completion" : "text_completion", createdAt);
                ObjectNode choice = reply.putArray("choices").addObject().put("index", 0);
                if (chat) choice.putObject("message").put("role", "assistant").put("content", c.text());
                else choice.put("text", c.text());
                choice.putNull("logprobs");
                choice.put("finish_reason", c.finish().openAi());
                reply.set("usage", usage(c));
                sendJson(ex, 200, reply);
                return summary(c);
            }
            ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
            ex.getResponseHeaders().set("Cache-Control", "no-cache");
            ex.sendResponseHeaders(200, 0);
            OutputStream out = ex.getResponseBody();
            String object = chat ? "chat.completion.chunk" : "text_completion";
            if (chat) {
                ObjectNode choice = JSON.createObjectNode().put("index", 0);
                choice.putObject("delta").put("role", "assistant").put("content", "");
                event(out, chunk(id, object, createdAt, job.usage(), choice.putNull("logprobs").putNull("finish_reason")));
            }
            TextGenerator.Completion c;
            try {
                c = generator.complete(job.prompt(), job.config(), job.stops(), piece -> {
                    if (closing) throw new Cancelled();
                    ObjectNode choice = JSON.createObjectNode().put("index", 0);
                    if (chat) choice.putObject("delta").put("content", piece);
                    else choice.put("text", piece);
                    choice.putNull("logprobs").putNull("finish_reason");
                    try {
                        event(out, chunk(id, object, createdAt, job.usage(), choice));
                    } catch (IOException io) {
                        throw new UncheckedIOException(io); // the client went away: stop generating
                    }
                });
            } catch (UncheckedIOException e) {
                status[0] = 499;
                return "client closed the stream: " + e.getCause().getMessage();
            } catch (RuntimeException e) {
                // The status line is sent: report in the stream, as OpenAI does, and end it.
                ApiException api = e instanceof Cancelled ? shuttingDown()
                        : new ApiException(500, "server_error", "internal error: " + e.getMessage(), null, null);
                ObjectNode err = JSON.createObjectNode();
                err.set("error", errorBody(api));
                event(out, err);
                status[0] = api.status;
                return api.getMessage();
            }
            ObjectNode choice = JSON.createObjectNode().put("index", 0);
            if (chat) choice.putObject("delta");
            else choice.put("text", "");
            choice.putNull("logprobs").put("finish_reason", c.finish().openAi());
            event(out, chunk(id, object, createdAt, job.usage(), choice));
            if (job.usage()) {
                ObjectNode u = envelope(id, object, createdAt);
                u.putArray("choices");
                u.set("usage", usage(c));
                event(out, u);
            }
            out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
            out.flush();
            return "stream " + summary(c);
        } finally {
            generating.unlock();
        }
    }

    private Job completionJob(RequestFields f) {
        common(f);
        f.unsupported("echo", f.has("echo") && f.bool("echo", false), "echo");
        f.unsupported("suffix", true, "suffix (insertion)");
        JsonNode p = f.require("prompt");
        int[] ids;
        if (p.isTextual()) ids = generator.encode(p.asText());
        else if (p.isArray() && p.size() == 1 && p.get(0).isTextual()) ids = generator.encode(p.get(0).asText());
        else if (p.isArray() && !p.isEmpty() && allInts(p)) {
            ids = new int[p.size()];
            int vocab = generator.model().config().vocabSize();
            for (int i = 0; i < ids.length; i++) {
                long t = p.get(i).asLong();
                if (!p.get(i).canConvertToInt() || t < 0 || t >= vocab)
                    throw ApiException.invalid("token id " + p.get(i) + " at prompt[" + i + "] is outside the "
                            + "vocabulary of " + vocab, "prompt");
                ids[i] = (int) t;
            }
        } else if (p.isArray() && p.size() > 1 && (p.get(0).isTextual() || p.get(0).isArray()))
            throw ApiException.invalid("'prompt' has " + p.size() + " prompts; this server takes one per request",
                    "prompt", "unsupported_parameter");
        else throw RequestFields.wrongType("prompt", "a string, a list of one string or a list of token ids", p);
        if (ids.length == 0) throw ApiException.invalid("'prompt' encodes to no tokens", "prompt");
        Long max = f.integer("max_tokens", 1, Integer.MAX_VALUE);
        return job(f, ids, max == null ? 16 : max.intValue(), "max_tokens", List.of());
    }

    private Job chatJob(RequestFields f) {
        common(f);
        f.unsupported("tools", f.has("tools") && !f.get("tools").isEmpty(), "tools and function calling");
        f.unsupported("functions", true, "function calling");
        f.unsupported("response_format", f.has("response_format")
                && !"text".equals(f.get("response_format").path("type").asText()), "structured output");
        f.unsupported("top_logprobs", true, "logprobs");
        JsonNode m = f.require("messages");
        if (!m.isArray()) throw RequestFields.wrongType("messages", "a list of messages", m);
        if (m.isEmpty()) throw ApiException.invalid("'messages' must have at least one message", "messages");
        List<ChatTemplate.Message> messages = new ArrayList<>();
        for (int i = 0; i < m.size(); i++) messages.add(message(m.get(i), "messages[" + i + "]"));
        ChatTemplate template = generator.chatTemplate();
        int[] ids;
        try {
            ids = generator.encodeChat(messages);
        } catch (IllegalArgumentException e) { // the template (or the DS-Chat form) rejects the conversation
            throw ApiException.invalid(e.getMessage(), "messages");
        } catch (ModelFormatException e) {
            throw new ApiException(500, "server_error", e.getMessage(), null, null);
        }
        Long max = f.integer("max_completion_tokens", 1, Integer.MAX_VALUE);
        String param = "max_completion_tokens";
        if (max == null) {
            max = f.integer("max_tokens", 1, Integer.MAX_VALUE);
            param = "max_tokens";
        }
        int n = max != null ? max.intValue()
                : Math.max(1, Math.min(options.maxTokensLimit(), generator.contextLength() - ids.length));
        return job(f, ids, n, param, template.stopStrings());
    }

    private static ChatTemplate.Message message(JsonNode n, String where) {
        if (!n.isObject()) throw RequestFields.wrongType(where, "an object with 'role' and 'content'", n);
        JsonNode role = n.get("role"), content = n.get("content");
        if (role == null || !role.isTextual())
            throw ApiException.invalid(where + " needs a 'role' string", where + ".role");
        String r = role.asText();
        if (r.equals("developer")) r = "system"; // OpenAI's newer name for the system role
        if (!List.of("system", "user", "assistant").contains(r))
            throw ApiException.invalid(where + ".role '" + role.asText() + "' is not one of system, developer, user,"
                    + " assistant", where + ".role");
        String text;
        if (content == null || content.isNull()) text = "";
        else if (content.isTextual()) text = content.asText();
        else if (content.isArray()) { // content parts: text only
            StringBuilder sb = new StringBuilder();
            for (JsonNode part : content) {
                if (!"text".equals(part.path("type").asText()) || !part.path("text").isTextual())
                    throw ApiException.invalid(where + ".content: only {\"type\": \"text\", \"text\": ...} parts are "
                            + "supported", where + ".content");
                sb.append(part.get("text").asText());
            }
            text = sb.toString();
        } else throw RequestFields.wrongType(where + ".content", "a string or a list of text parts", content);
        return new ChatTemplate.Message(r, text);
    }

    /** Checks shared by both endpoints: the model name, n, and what this server does not do. */
    private void common(RequestFields f) {
        String model = f.string("model", null);
        if (model != null && !model.equals(options.modelId())) throw modelNotFound(model);
        Long n = f.integer("n", 1, Integer.MAX_VALUE);
        if (n != null && n != 1)
            throw ApiException.invalid("n = " + n + ": this server generates one choice per request (n = 1)", "n",
                    "unsupported_parameter");
        Long bestOf = f.integer("best_of", 1, Integer.MAX_VALUE);
        f.unsupported("best_of", bestOf != null && bestOf != 1, "best_of > 1");
        JsonNode logprobs = f.get("logprobs");
        f.unsupported("logprobs", logprobs != null && !(logprobs.isBoolean() && !logprobs.asBoolean())
                && !(logprobs.isIntegralNumber() && logprobs.asInt() == 0), "logprobs");
        for (String penalty : List.of("presence_penalty", "frequency_penalty")) {
            Double v = f.number(penalty, -2, false, 2);
            f.unsupported(penalty, v != null && v != 0, penalty + " (use repetition_penalty)");
        }
        f.unsupported("logit_bias", f.has("logit_bias") && !f.get("logit_bias").isEmpty(), "logit_bias");
        f.bool("stream", false);
    }

    private Job job(RequestFields f, int[] ids, int maxTokens, String maxParam, List<String> templateStops) {
        if (maxTokens > options.maxTokensLimit())
            throw ApiException.invalid(maxParam + " = " + maxTokens + " is over this server's limit of "
                    + options.maxTokensLimit() + " tokens per request", maxParam);
        int context = generator.contextLength();
        if (ids.length + maxTokens > context)
            throw ApiException.invalid("This model's maximum context length is " + context + " tokens. However, you "
                    + "requested " + (ids.length + maxTokens) + " tokens (" + ids.length + " in the prompt, "
                    + maxTokens + " for the completion). Please reduce the prompt or " + maxParam + ".",
                    ids.length >= context ? (f.has("messages") ? "messages" : "prompt") : maxParam,
                    "context_length_exceeded");
        double temperature = orElse(f.number("temperature", 0, false, 2), 1.0);
        double topP = orElse(f.number("top_p", 0, true, 1), 1.0);
        Long topK = f.integer("top_k", -1, Integer.MAX_VALUE);
        double rp = orElse(f.number("repetition_penalty", 0, true, Double.MAX_VALUE), 1.0);
        Long seed = f.integer("seed", Long.MIN_VALUE, Long.MAX_VALUE);
        boolean ignoreEos = f.bool("ignore_eos", false);
        List<String> stops = new ArrayList<>(templateStops);
        stops.addAll(f.stop(MAX_STOP_STRINGS));
        boolean stream = f.bool("stream", false);
        JsonNode so = f.get("stream_options");
        if (so != null && !stream)
            throw ApiException.invalid("'stream_options' needs 'stream': true", "stream_options");
        boolean usage = false;
        if (so != null) {
            if (!so.isObject()) throw RequestFields.wrongType("stream_options", "an object", so);
            JsonNode iu = so.get("include_usage");
            if (iu != null && !iu.isNull() && !iu.isBoolean())
                throw RequestFields.wrongType("stream_options.include_usage", "a boolean", iu);
            usage = iu != null && iu.asBoolean();
        }
        // vLLM's rule: a temperature this small is greedy decoding.
        GenerationConfig config = temperature < 1e-5 ? generator.greedy(maxTokens)
                : generator.sampling(maxTokens, temperature, topK == null || topK < 0 ? 0 : topK.intValue(), topP,
                        seed != null ? seed : ThreadLocalRandom.current().nextLong());
        config = config.withRepetitionPenalty(rp).withIgnoreEos(ignoreEos);
        return new Job(ids, config, stops, stream, usage);
    }

    private static boolean allInts(JsonNode array) {
        for (JsonNode n : array) if (!n.isIntegralNumber()) return false;
        return true;
    }

    private static double orElse(Double v, double otherwise) {
        return v == null ? otherwise : v;
    }

    private static byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        ThreadLocalRandom.current().nextBytes(b);
        return b;
    }

    // ---- responses ----------------------------------------------------------------------------------------------

    private ObjectNode envelope(String id, String object, long createdAt) {
        return JSON.createObjectNode().put("id", id).put("object", object).put("created", createdAt)
                .put("model", options.modelId());
    }

    private ObjectNode chunk(String id, String object, long createdAt, boolean withUsage, ObjectNode choice) {
        ObjectNode c = envelope(id, object, createdAt);
        c.putArray("choices").add(choice);
        if (withUsage) c.putNull("usage"); // OpenAI: null on every chunk but the last when include_usage is set
        return c;
    }

    private static ObjectNode usage(TextGenerator.Completion c) {
        return JSON.createObjectNode().put("prompt_tokens", c.promptTokens())
                .put("completion_tokens", c.tokens().length)
                .put("total_tokens", c.promptTokens() + c.tokens().length);
    }

    private static String summary(TextGenerator.Completion c) {
        return String.format(Locale.ROOT, "%d+%d tokens, %s, %.1f tokens/s", c.promptTokens(), c.tokens().length,
                c.finish().openAi(), c.decodeTokensPerSecond());
    }

    private static void event(OutputStream out, JsonNode data) throws IOException {
        out.write(("data: " + JSON.writeValueAsString(data) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static void sendJson(HttpExchange ex, int status, JsonNode body) throws IOException {
        byte[] bytes = JSON.writeValueAsBytes(body);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    private static ObjectNode errorBody(ApiException e) {
        ObjectNode err = JSON.createObjectNode().put("message", e.getMessage()).put("type", e.type);
        if (e.param == null) err.putNull("param");
        else err.put("param", e.param);
        if (e.code == null) err.putNull("code");
        else err.put("code", e.code);
        return err;
    }

    private static void sendError(HttpExchange ex, ApiException e) {
        if (ex.getResponseCode() != -1) return; // headers already sent (a stream): nothing more to say here
        ObjectNode body = JSON.createObjectNode();
        body.set("error", errorBody(e));
        try {
            sendJson(ex, e.status, body);
        } catch (IOException ignored) {
            // the client is gone
        }
    }
}
