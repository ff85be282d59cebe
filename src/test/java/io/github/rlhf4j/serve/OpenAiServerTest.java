package io.github.rlhf4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.runtime.Device;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server end to end over a real socket (an ephemeral port on 127.0.0.1), with the JDK's HTTP client: greedy
 * replies equal to {@link io.github.rlhf4j.generate.Generator}'s, chat in DeepSpeed-Chat's form, server-sent events
 * that add up to the plain reply, and OpenAI's error shape for every bad request.
 */
class OpenAiServerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int LIMIT = 64;

    @TempDir
    static Path tmp;

    static TextGenerator generator;
    static OpenAiServer server;
    static HttpClient client;
    static final List<String> log = java.util.Collections.synchronizedList(new ArrayList<>());

    @BeforeAll
    static void start() throws IOException {
        generator = TextGenerator.load(TestModels.make(tmp.resolve("tiny"), "opt_style", 128, 21), Device.cpu());
        var options = new OpenAiServer.Options("127.0.0.1", 0, "tiny", LIMIT, 4096, 4);
        server = OpenAiServer.start(generator, options, log::add);
        client = HttpClient.newHttpClient();
    }

    @AfterAll
    static void stop() {
        server.close();
        generator.close();
        client.close();
    }

    static HttpResponse<String> send(String method, String path, String body) {
        var b = HttpRequest.newBuilder(URI.create(server.uri() + path)).header("Content-Type", "application/json")
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        try {
            return client.send(b.build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException | InterruptedException e) {
            throw new AssertionError(method + " " + path + " failed", e);
        }
    }

    static JsonNode ok(HttpResponse<String> r) {
        assertEquals(200, r.statusCode(), r.body());
        try {
            return JSON.readTree(r.body());
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + r.body(), e);
        }
    }

    static JsonNode post(String path, String body) {
        return ok(send("POST", path, body));
    }

    static TestModels.Reference greedy(int[] prompt, int max) {
        return TestModels.greedy(generator.model(), generator.tokenizer(), prompt, max, false);
    }

    @Test
    void modelsListsTheServedModel() {
        JsonNode list = ok(send("GET", "/v1/models", null));
        assertEquals("list", list.get("object").asText());
        assertEquals(1, list.get("data").size());
        JsonNode m = list.get("data").get(0);
        assertEquals("tiny", m.get("id").asText());
        assertEquals("model", m.get("object").asText());
        assertEquals(128, m.get("max_model_len").asInt());
        assertEquals(m, ok(send("GET", "/v1/models/tiny", null)));
        assertTrue(server.address().getAddress().isLoopbackAddress());
        assertEquals("127.0.0.1", OpenAiServer.Options.defaults("x").host());
    }

    @Test
    void greedyCompletionIsGeneratorsReplyWithUsage() {
        String prompt = "Hello there, my friend";
        int[] ids = generator.encode(prompt);
        var ref = greedy(ids, 12);
        JsonNode r = post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"" + prompt
                + "\", \"max_tokens\": 12, \"temperature\": 0}");
        assertEquals("text_completion", r.get("object").asText());
        assertTrue(r.get("id").asText().startsWith("cmpl-"));
        assertEquals("tiny", r.get("model").asText());
        JsonNode choice = r.get("choices").get(0);
        assertEquals(ref.text(), choice.get("text").asText());
        assertEquals(ref.eos() ? "stop" : "length", choice.get("finish_reason").asText());
        assertEquals(ids.length, r.get("usage").get("prompt_tokens").asInt());
        assertEquals(ref.tokens().length, r.get("usage").get("completion_tokens").asInt());
        assertEquals(ids.length + ref.tokens().length, r.get("usage").get("total_tokens").asInt());
        // the same prompt as token ids, and as a list of one string
        ObjectNode byIds = JSON.createObjectNode().put("max_tokens", 12).put("temperature", 0);
        for (int id : ids) byIds.withArrayProperty("prompt").add(id);
        assertEquals(ref.text(), post("/v1/completions", byIds.toString()).get("choices").get(0).get("text").asText());
        assertEquals(ref.text(), post("/v1/completions", "{\"prompt\": [\"" + prompt + "\"], \"max_tokens\": 12, "
                + "\"temperature\": 0}").get("choices").get(0).get("text").asText());
    }

    @Test
    void chatCompletionAnswersInDeepSpeedChatForm() {
        // chatbot.py's history for these turns, then the reply cut where the model starts the next "Human: "
        String prompt = " Human: Hi\n Assistant: Hello! How can I help?\n\n Human: Tell me a joke.\n Assistant: ";
        String text = greedy(generator.encode(prompt), 10).text();
        int cut = text.indexOf("Human: ");
        String expected = cut < 0 ? text : text.substring(0, cut);
        JsonNode r = post("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": "Hello! How can I help?"},
                              {"role": "user", "content": [{"type": "text", "text": "Tell me "}, {"type": "text", "text": "a joke."}]}],
                 "max_tokens": 10, "temperature": 0}""");
        assertEquals("chat.completion", r.get("object").asText());
        assertTrue(r.get("id").asText().startsWith("chatcmpl-"));
        JsonNode message = r.get("choices").get(0).get("message");
        assertEquals("assistant", message.get("role").asText());
        assertEquals(expected, message.get("content").asText());
        assertFalse(expected.isEmpty(), "an empty reply tests little");
        assertEquals(generator.encode(prompt).length, r.get("usage").get("prompt_tokens").asInt());
    }

    /** The JSON events of a server-sent event stream, which must end with {@code data: [DONE]}. */
    static List<JsonNode> events(HttpResponse<String> r) throws IOException {
        assertEquals(200, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"), r.headers().toString());
        String body = r.body();
        assertTrue(body.endsWith("data: [DONE]\n\n"), body);
        List<JsonNode> out = new ArrayList<>();
        for (String event : body.substring(0, body.length() - "data: [DONE]\n\n".length()).split("\n\n")) {
            assertTrue(event.startsWith("data: ") && !event.contains("\n"), "bad event: " + event);
            out.add(JSON.readTree(event.substring(6)));
        }
        return out;
    }

    @Test
    void streamedCompletionChunksAddUpToTheReply() throws IOException {
        String body = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 20, \"temperature\": 0.9, \"seed\": 7, "
                + "\"ignore_eos\": true";
        JsonNode plain = post("/v1/completions", body + "}");
        List<JsonNode> events = events(send("POST", "/v1/completions", body
                + ", \"stream\": true, \"stream_options\": {\"include_usage\": true}}"));
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < events.size() - 2; i++) {
            JsonNode c = events.get(i);
            assertEquals("text_completion", c.get("object").asText());
            assertEquals(events.get(0).get("id"), c.get("id"));
            assertTrue(c.get("choices").get(0).get("finish_reason").isNull());
            assertTrue(c.get("usage").isNull());
            text.append(c.get("choices").get(0).get("text").asText());
        }
        JsonNode last = events.get(events.size() - 2), usage = events.getLast();
        assertEquals("length", last.get("choices").get(0).get("finish_reason").asText());
        assertEquals(plain.get("choices").get(0).get("text").asText(), text.toString());
        assertTrue(events.size() > 5, "streamed in " + events.size() + " events");
        assertEquals(0, usage.get("choices").size());
        assertEquals(plain.get("usage"), usage.get("usage"));
        assertEquals(20, usage.get("usage").get("completion_tokens").asInt());
    }

    @Test
    void streamedChatChunksAddUpToTheReply() throws IOException {
        String body = "{\"messages\": [{\"role\": \"user\", \"content\": \"What is the internet?\"}], "
                + "\"max_tokens\": 16, \"temperature\": 0";
        JsonNode plain = post("/v1/chat/completions", body + "}");
        List<JsonNode> events = events(send("POST", "/v1/chat/completions", body + ", \"stream\": true}"));
        JsonNode first = events.getFirst().get("choices").get(0);
        assertEquals("assistant", first.get("delta").get("role").asText());
        StringBuilder text = new StringBuilder();
        for (JsonNode e : events) {
            assertEquals("chat.completion.chunk", e.get("object").asText());
            assertFalse(e.has("usage"), "usage without include_usage");
            text.append(e.get("choices").get(0).get("delta").path("content").asText(""));
        }
        JsonNode last = events.getLast().get("choices").get(0);
        assertEquals(0, last.get("delta").size());
        assertEquals(plain.get("choices").get(0).get("finish_reason"), last.get("finish_reason"));
        assertEquals(plain.get("choices").get(0).get("message").get("content").asText(), text.toString());
    }

    @Test
    void stopStringsCutTheReplyStreamedOrNot() throws IOException {
        String prompt = "The weather today is";
        var ref = TestModels.greedy(generator.model(), generator.tokenizer(), generator.encode(prompt), 24, true);
        String stop = ref.text().substring(ref.text().length() / 2, ref.text().length() / 2 + 2);
        ObjectNode req = JSON.createObjectNode().put("prompt", prompt).put("max_tokens", 24).put("temperature", 0)
                .put("ignore_eos", true);
        req.putArray("stop").add("never appears \u2603").add(stop);
        JsonNode plain = post("/v1/completions", req.toString());
        assertEquals(ref.text().substring(0, ref.text().indexOf(stop)), plain.get("choices").get(0).get("text").asText());
        assertEquals("stop", plain.get("choices").get(0).get("finish_reason").asText());
        assertTrue(plain.get("usage").get("completion_tokens").asInt() < 24);
        List<JsonNode> events = events(send("POST", "/v1/completions", req.put("stream", true).toString()));
        StringBuilder text = new StringBuilder();
        for (JsonNode e : events) text.append(e.get("choices").get(0).get("text").asText());
        assertEquals(plain.get("choices").get(0).get("text").asText(), text.toString());
        assertEquals("stop", events.getLast().get("choices").get(0).get("finish_reason").asText());
    }

    @Test
    void concurrentRequestsAreServedOneAtATimeWithTheSameAnswers() {
        String body = "{\"prompt\": \"Tell me\", \"max_tokens\": 16, \"temperature\": 0, \"ignore_eos\": true}";
        String expected = post("/v1/completions", body).get("choices").get(0).get("text").asText();
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (int i = 0; i < 3; i++)
            all.add(client.sendAsync(HttpRequest.newBuilder(URI.create(server.uri() + "/v1/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()));
        for (var f : all) assertEquals(expected, ok(f.join()).get("choices").get(0).get("text").asText());
    }

    /** Asserts OpenAI's error shape, exactly its four fields, with this status, param and code. */
    static void error(HttpResponse<String> r, int status, String param, String code) {
        assertEquals(status, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"));
        JsonNode e;
        try {
            e = JSON.readTree(r.body()).get("error");
        } catch (IOException x) {
            throw new AssertionError("not JSON: " + r.body(), x);
        }
        assertEquals(Set.of("message", "type", "param", "code"), toSet(e.fieldNames()), r.body());
        assertFalse(e.get("message").asText().isBlank());
        assertEquals(status >= 500 ? "server_error" : "invalid_request_error", e.get("type").asText());
        assertEquals(param, e.get("param").isNull() ? null : e.get("param").asText(), r.body());
        if (code != null) assertEquals(code, e.get("code").asText(), r.body());
    }

    static Set<String> toSet(java.util.Iterator<String> it) {
        Set<String> s = new java.util.HashSet<>();
        it.forEachRemaining(s::add);
        return s;
    }

    @Test
    void badCompletionRequestsGetOpenAiErrorsNamingTheField() {
        String c = "/v1/completions";
        error(send("POST", c, "{bad"), 400, null, "invalid_json");
        error(send("POST", c, "[1, 2]"), 400, null, "invalid_json");
        error(send("POST", c, ""), 400, null, null);
        error(send("POST", c, "{}"), 400, "prompt", "missing_required_parameter");
        error(send("POST", c, "{\"prompt\": 5}"), 400, "prompt", "invalid_type");
        error(send("POST", c, "{\"prompt\": [\"a\", \"b\"]}"), 400, "prompt", "unsupported_parameter");
        error(send("POST", c, "{\"prompt\": [99999]}"), 400, "prompt", null);
        error(send("POST", c, "{\"prompt\": \"x\", \"max_tokens\": \"5\"}"), 400, "max_tokens", "invalid_type");
        error(send("POST", c, "{\"prompt\": \"x\", \"max_tokens\": 1.5}"), 400, "max_tokens", "invalid_type");
        error(send("POST", c, "{\"prompt\": \"x\", \"max_tokens\": 0}"), 400, "max_tokens", null);
        error(send("POST", c, "{\"prompt\": \"x\", \"max_tokens\": " + (LIMIT + 1) + "}"), 400, "max_tokens", null);
        error(send("POST", c, "{\"prompt\": \"" + "word ".repeat(130) + "\", \"max_tokens\": 8}"), 400, "prompt",
                "context_length_exceeded");
        error(send("POST", c, "{\"prompt\": \"x\", \"temperature\": 2.5}"), 400, "temperature", null);
        error(send("POST", c, "{\"prompt\": \"x\", \"temperature\": \"hot\"}"), 400, "temperature", "invalid_type");
        error(send("POST", c, "{\"prompt\": \"x\", \"top_p\": 0}"), 400, "top_p", null);
        error(send("POST", c, "{\"prompt\": \"x\", \"seed\": \"1\"}"), 400, "seed", "invalid_type");
        error(send("POST", c, "{\"prompt\": \"x\", \"n\": 2}"), 400, "n", "unsupported_parameter");
        error(send("POST", c, "{\"prompt\": \"x\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}"), 400, "stop", null);
        error(send("POST", c, "{\"prompt\": \"x\", \"stop\": 7}"), 400, "stop", "invalid_type");
        error(send("POST", c, "{\"prompt\": \"x\", \"stop\": [\"\"]}"), 400, "stop", null);
        error(send("POST", c, "{\"prompt\": \"x\", \"stream\": \"yes\"}"), 400, "stream", "invalid_type");
        error(send("POST", c, "{\"prompt\": \"x\", \"stream_options\": {\"include_usage\": true}}"), 400,
                "stream_options", null);
        error(send("POST", c, "{\"prompt\": \"x\", \"logprobs\": 5}"), 400, "logprobs", "unsupported_parameter");
        error(send("POST", c, "{\"prompt\": \"x\", \"echo\": true}"), 400, "echo", "unsupported_parameter");
        error(send("POST", c, "{\"prompt\": \"x\", \"model\": \"gpt-4\"}"), 404, "model", "model_not_found");
        error(send("POST", c, "{\"prompt\": \"" + "x".repeat(5000) + "\"}"), 413, null, "request_too_large");
        // unknown fields are ignored, as OpenAI's clients send many
        ok(send("POST", c, "{\"prompt\": \"x\", \"max_tokens\": 1, \"user\": \"me\", \"presence_penalty\": 0}"));
    }

    @Test
    void badChatRequestsAndRoutesGetOpenAiErrors() {
        String c = "/v1/chat/completions";
        error(send("POST", c, "{}"), 400, "messages", "missing_required_parameter");
        error(send("POST", c, "{\"messages\": []}"), 400, "messages", null);
        error(send("POST", c, "{\"messages\": \"hi\"}"), 400, "messages", "invalid_type");
        error(send("POST", c, "{\"messages\": [\"hi\"]}"), 400, "messages[0]", "invalid_type");
        error(send("POST", c, "{\"messages\": [{\"content\": \"x\"}]}"), 400, "messages[0].role", null);
        error(send("POST", c, "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}"), 400,
                "messages[0].role", null);
        error(send("POST", c, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}"),
                400, "messages[0].content", null);
        // DeepSpeed-Chat's form has no system role
        error(send("POST", c, "{\"messages\": [{\"role\": \"system\", \"content\": \"x\"}, {\"role\": \"user\", "
                + "\"content\": \"y\"}]}"), 400, "messages", null);
        error(send("POST", c, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{}]}"), 400,
                "tools", "unsupported_parameter");
        error(send("POST", c, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_completion_tokens\": "
                + (LIMIT + 1) + "}"), 400, "max_completion_tokens", null);

        error(send("POST", "/v1/nope", "{}"), 404, null, "unknown_url");
        error(send("GET", "/", null), 404, null, "unknown_url");
        error(send("GET", "/v1/models/other", null), 404, "model", "model_not_found");
        HttpResponse<String> r = send("GET", c, null);
        error(r, 405, null, "method_not_allowed");
        assertEquals("POST", r.headers().firstValue("Allow").orElse(null));
        r = send("DELETE", "/v1/models", null);
        error(r, 405, null, "method_not_allowed");
        assertEquals("GET", r.headers().firstValue("Allow").orElse(null));
        assertTrue(log.stream().anyMatch(l -> l.startsWith("GET /v1/chat/completions 405")), log.toString());
    }
}
