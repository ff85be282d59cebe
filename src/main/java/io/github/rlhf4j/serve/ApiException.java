package io.github.rlhf4j.serve;

/**
 * A request the server refuses, answered with {@code status} and OpenAI's error body
 * {@code {"error": {"message", "type", "param", "code"}}}.
 */
final class ApiException extends RuntimeException {
    final int status;
    final String type;
    final String param;
    final String code;
    String allow; // the Allow header of a 405

    ApiException(int status, String type, String message, String param, String code) {
        super(message, null, false, false);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    ApiException allowing(String methods) {
        this.allow = methods;
        return this;
    }

    /** 400 invalid_request_error about {@code param} (may be null). */
    static ApiException invalid(String message, String param) {
        return new ApiException(400, "invalid_request_error", message, param, null);
    }

    static ApiException invalid(String message, String param, String code) {
        return new ApiException(400, "invalid_request_error", message, param, code);
    }
}
