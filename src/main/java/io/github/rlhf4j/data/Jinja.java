package io.github.rlhf4j.data;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.filter.AdvancedFilter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.lib.tag.Tag;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TagNode;
import java.beans.FeatureDescriptor;
import java.lang.reflect.Array;
import java.lang.reflect.Method;
import java.math.BigDecimal;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.TextStyle;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * The Jinja environment transformers renders chat templates in ({@code ImmutableSandboxedEnvironment(trim_blocks=True,
 * lstrip_blocks=True)} with {@code raise_exception}, {@code strftime_now} and its own {@code tojson}), rebuilt on
 * HubSpot's jinjava, the maintained Jinja engine for Java.
 *
 * <p>jinjava's defaults differ from jinja2 in ways chat templates trip over, so: the {@link LegacyOverrides} below
 * turn on jinja2's whitespace control for {@code {{- -}}}, its operator precedence and dict literals; Python's
 * {@code str} methods that templates call ({@code strip}, {@code split}, {@code startswith}, ...) are provided by
 * {@link PyStrResolver}, since jinjava only sees Java's {@code String} methods; and {@code tojson} writes Python's
 * {@code json.dumps} layout ({@code ", "} and {@code ": "}), which transformers' templates put into prompts; and
 * transformers' {@code {% generation %}} block renders its body.
 *
 * <p>jinja2 binds {@code is} tests and {@code in} tighter than {@code not}, as Python does; jinjava binds {@code not}
 * first, so {@code not date_string is defined} would always be true and Llama-3.1's template would drop the tools and
 * the date it is given; so does {@code not messages|length > 1}. {@link #prepare} puts the operand of each
 * {@code not} in parentheses before jinjava parses the template. {@code strftime_now} and
 * {@code raise_exception} are also visible as variables, so {@code strftime_now is defined} holds as in jinja2.
 *
 * <p>jinjava's parser also takes no slice step and ends a keyword argument's value at its first operator, so
 * {@link #prepare} writes Qwen3's {@code messages[::-1]} as {@code (messages|reverse|list)} and
 * {@code namespace(n=xs|length - 1)} as {@code namespace(n=(xs|length - 1))}. Other step slices fail with an error
 * naming the template. {@code {{ true }}} prints {@code true} where jinja2 prints {@code True}.
 */
final class Jinja {
    private Jinja() {}

    private static final Jinjava ENGINE = create();

    /** Thrown by the template's {@code raise_exception(message)}: the template rejects the conversation. */
    static final class Raised extends RuntimeException {
        Raised(String message) {
            super(message);
        }
    }

    /** A template that does not parse or fails while rendering, other than through {@code raise_exception}. */
    static final class Failed extends RuntimeException {
        Failed(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** Rewrites what jinjava would read differently from jinja2; see the class comment. */
    static String prepare(String template) {
        StringBuilder out = new StringBuilder(template.length());
        int i = 0, n = template.length();
        while (i < n) {
            if (template.startsWith("{#", i)) {
                int end = template.indexOf("#}", i + 2);
                end = end < 0 ? n : end + 2;
                out.append(template, i, end);
                i = end;
            } else if (template.startsWith("{{", i) || template.startsWith("{%", i)) {
                String close = template.charAt(i + 1) == '{' ? "}}" : "%}";
                int end = i + 2;
                while (end < n && !template.startsWith(close, end))
                    end = isQuote(template.charAt(end)) ? skipString(template, end) : end + 1;
                // A trailing - or + before the closing delimiter is whitespace control, not part of the expression.
                int body = end;
                while (body > i + 2 && Character.isWhitespace(template.charAt(body - 1))) body--;
                if (body > i + 2 && (template.charAt(body - 1) == '-' || template.charAt(body - 1) == '+')) body--;
                else body = end;
                String expression = keywordValues(reverseSlices(template.substring(i + 2, body)));
                out.append(template, i, i + 2).append(notPrecedence(expression)).append(template, body, end);
                i = end;
            } else {
                out.append(template.charAt(i++));
            }
        }
        return out.toString();
    }

    /**
     * Puts the operand of every unary {@code not} in parentheses, up to where jinja2 ends it: the next {@code and},
     * {@code or}, {@code if}, {@code else}, comma or closing bracket at the same depth. ({@code x not in y} and
     * {@code x is not t} are not unary.)
     */
    private static String notPrecedence(String x) {
        StringBuilder out = new StringBuilder(x.length() + 8);
        int i = 0, n = x.length();
        String previousWord = "";
        while (i < n) {
            char c = x.charAt(i);
            if (isQuote(c)) {
                int end = skipString(x, i);
                out.append(x, i, end);
                i = end;
                continue;
            }
            if (!Character.isJavaIdentifierStart(c)) {
                out.append(c);
                i++;
                continue;
            }
            int wordEnd = i;
            while (wordEnd < n && Character.isJavaIdentifierPart(x.charAt(wordEnd))) wordEnd++;
            String word = x.substring(i, wordEnd);
            int from = skipSpaces(x, wordEnd);
            if (word.equals("not") && !previousWord.equals("is") && !keyword(x, from, "in") && from < n) {
                int to = operandEnd(x, from);
                out.append("not (").append(notPrecedence(x.substring(from, to).stripTrailing())).append(") ");
                i = to;
                previousWord = "";
                continue;
            }
            out.append(word);
            previousWord = word;
            i = wordEnd;
        }
        return out.toString();
    }

    /** {@code x.y[::-1]} to {@code (x.y|reverse|list)}: jinjava's slices take no step. */
    private static String reverseSlices(String x) {
        String slice = "[::-1]";
        int at = indexOutsideStrings(x, slice, 0);
        while (at >= 0) {
            int start = at;
            while (start > 0) { // back over the postfix chain: names, dots, [..] and (..)
                char c = x.charAt(start - 1);
                if (Character.isJavaIdentifierPart(c) || c == '.') start--;
                else if (c == ']' || c == ')') start = opening(x, start - 1);
                else break;
            }
            String operand = x.substring(start, at);
            x = x.substring(0, start) + "(" + operand + "|reverse|list)" + x.substring(at + slice.length());
            at = indexOutsideStrings(x, slice, start + operand.length() + 14);
        }
        return x;
    }

    /**
     * {@code f(a=x|length - 1)} to {@code f(a=(x|length - 1))}: jinjava ends a keyword argument's value at the
     * first binary operator.
     */
    private static String keywordValues(String x) {
        StringBuilder out = new StringBuilder(x.length() + 8);
        int depth = 0;
        for (int i = 0; i < x.length(); i++) {
            char c = x.charAt(i);
            if (isQuote(c)) {
                int end = skipString(x, i);
                out.append(x, i, end);
                i = end - 1;
                continue;
            }
            if (c == '(' || c == '[' || c == '{') depth++;
            if (c == ')' || c == ']' || c == '}') depth--;
            out.append(c);
            boolean kwarg = c == '=' && depth > 0 && i > 0 && Character.isJavaIdentifierPart(x.charAt(i - 1))
                    && (i + 1 == x.length() || x.charAt(i + 1) != '=') && insideCall(x, i);
            if (!kwarg) continue;
            int from = i + 1, to = from, d = 0;
            while (to < x.length()) {
                char t = x.charAt(to);
                if (isQuote(t)) {
                    to = skipString(x, to);
                    continue;
                }
                if (t == '(' || t == '[' || t == '{') d++;
                else if (t == ')' || t == ']' || t == '}') {
                    if (d == 0) break;
                    d--;
                } else if (t == ',' && d == 0) break;
                to++;
            }
            out.append('(').append(keywordValues(x.substring(from, to))).append(')');
            i = to - 1;
        }
        return out.toString();
    }

    /** Whether position {@code i} is directly inside the parentheses of a call {@code name(...)}. */
    private static boolean insideCall(String x, int i) {
        int d = 0;
        for (int j = i - 1; j >= 0; j--) {
            char c = x.charAt(j);
            if (c == ')' || c == ']' || c == '}') d++;
            else if (c == '(' || c == '[' || c == '{') {
                if (d-- > 0) continue;
                return c == '(' && j > 0 && Character.isJavaIdentifierPart(x.charAt(j - 1));
            }
        }
        return false;
    }

    /** The index of the bracket that opens the one closing at {@code close}. */
    private static int opening(String x, int close) {
        int d = 0;
        for (int j = close; j >= 0; j--) {
            char c = x.charAt(j);
            if (c == ')' || c == ']' || c == '}') d++;
            else if ((c == '(' || c == '[' || c == '{') && --d == 0) return j;
        }
        return 0;
    }

    private static int indexOutsideStrings(String x, String what, int from) {
        for (int i = from; i < x.length(); i++) {
            if (isQuote(x.charAt(i))) {
                i = skipString(x, i) - 1;
                continue;
            }
            if (x.startsWith(what, i)) return i;
        }
        return -1;
    }

    /** Where the operand of a unary {@code not} that starts at {@code i} ends. */
    private static int operandEnd(String x, int i) {
        int depth = 0, j = i;
        while (j < x.length()) {
            char c = x.charAt(j);
            if (isQuote(c)) {
                j = skipString(x, j);
                continue;
            }
            if (c == '(' || c == '[' || c == '{') depth++;
            else if (c == ')' || c == ']' || c == '}') {
                if (depth == 0) return j;
                depth--;
            } else if (depth == 0 && (c == ',' || c == ':')) {
                return j;
            } else if (depth == 0 && Character.isJavaIdentifierStart(c)
                    && (j == 0 || !Character.isJavaIdentifierPart(x.charAt(j - 1)))) {
                for (String stop : List.of("and", "or", "if", "else"))
                    if (keyword(x, j, stop)) return j;
            }
            j++;
        }
        return j;
    }

    private static boolean keyword(String x, int i, String word) {
        int end = i + word.length();
        return x.startsWith(word, i) && (end == x.length() || !Character.isJavaIdentifierPart(x.charAt(end)));
    }

    private static boolean isQuote(char c) {
        return c == '\'' || c == '"';
    }

    private static int skipString(String x, int i) {
        char q = x.charAt(i);
        int j = i + 1;
        while (j < x.length() && x.charAt(j) != q) j += x.charAt(j) == '\\' ? 2 : 1;
        return Math.min(j + 1, x.length());
    }

    private static int skipSpaces(String x, int i) {
        while (i < x.length() && Character.isWhitespace(x.charAt(i))) i++;
        return i;
    }

    /** Renders a template that went through {@link #prepare}. */
    static String render(String template, Map<String, ?> variables) {
        Map<String, Object> vars = new HashMap<>(variables);
        vars.putIfAbsent("strftime_now", "strftime_now");     // so that `strftime_now is defined`, as in jinja2
        vars.putIfAbsent("raise_exception", "raise_exception");
        RenderResult result = ENGINE.renderForResult(template, vars);
        for (TemplateError e : result.getErrors()) {
            if (e.getSeverity() != TemplateError.ErrorType.FATAL) continue;
            for (Throwable t = e.getException(); t != null; t = t.getCause())
                if (t instanceof Raised r) throw r;
            String where = e.getLineno() > 0 ? "line " + e.getLineno() + ": " : "";
            throw new Failed(where + e.getMessage(), e.getException());
        }
        return result.getOutput();
    }

    private static Jinjava create() {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PyStrResolver());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withElResolver(resolver)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withParseWhitespaceControlStrictly(true)
                        .withUseTrimmingForNotesAndExpressions(true)
                        .withKeepNullableLoopValues(true)
                        .withUseNaturalOperatorPrecedence(true)
                        .withEvaluateMapKeys(true)
                        .withIterateOverMapKeys(true)
                        .withUsePyishObjectMapper(true)
                        .build())
                .build();
        Jinjava jinjava = new Jinjava(config);
        jinjava.getGlobalContext().registerFunction(function("raise_exception", "raiseException", String.class));
        jinjava.getGlobalContext().registerFunction(function("strftime_now", "strftimeNow", String.class));
        jinjava.getGlobalContext().registerFilter(new ToJson());
        jinjava.getGlobalContext().registerTag(new Generation());
        return jinjava;
    }

    private static ELFunctionDefinition function(String name, String method, Class<?>... types) {
        try {
            Method m = Jinja.class.getDeclaredMethod(method, types);
            m.setAccessible(true); // jinjava calls it reflectively; this class is not public
            return new ELFunctionDefinition("", name, m);
        } catch (NoSuchMethodException e) {
            throw new AssertionError(e);
        }
    }

    static String raiseException(String message) {
        throw new Raised(message);
    }

    static String strftimeNow(String format) {
        return strftime(format, LocalDateTime.now());
    }

    /** Python's {@code datetime.strftime} for the directives chat templates use, in the C locale. */
    static String strftime(String format, LocalDateTime t) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 == format.length()) {
                out.append(c);
                continue;
            }
            char d = format.charAt(++i);
            out.append(switch (d) {
                case 'd' -> two(t.getDayOfMonth());
                case 'm' -> two(t.getMonthValue());
                case 'y' -> two(t.getYear() % 100);
                case 'Y' -> Integer.toString(t.getYear());
                case 'H' -> two(t.getHour());
                case 'I' -> two(t.getHour() % 12 == 0 ? 12 : t.getHour() % 12);
                case 'M' -> two(t.getMinute());
                case 'S' -> two(t.getSecond());
                case 'p' -> t.getHour() < 12 ? "AM" : "PM";
                case 'j' -> String.format(Locale.ROOT, "%03d", t.getDayOfYear());
                case 'b' -> t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH);
                case 'B' -> t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH);
                case 'a' -> t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH);
                case 'A' -> t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH);
                case 'F' -> t.format(DateTimeFormatter.ISO_LOCAL_DATE);
                case '%' -> "%";
                default -> throw new Raised("strftime_now: unsupported directive %" + d + " in \"" + format + "\"");
            });
        }
        return out.toString();
    }

    private static String two(int v) {
        return v < 10 ? "0" + v : Integer.toString(v);
    }

    /**
     * Python's {@code str} methods on strings ({@code content.strip()}, {@code content.split('</think>')[-1]}, ...),
     * with Python's semantics where Java's same-named method differs ({@code split} takes a separator, not a regex).
     */
    static final class PyStrResolver extends ELResolver {
        @Override
        public Object invoke(ELContext context, Object base, Object method, Class<?>[] types, Object[] args) {
            if (!(base instanceof String s) || !(method instanceof String name)) return null;
            Object[] a = args == null ? new Object[0] : args;
            Object result = switch (name) {
                case "strip" -> strip(s, chars(a, 0), true, true);
                case "lstrip" -> strip(s, chars(a, 0), true, false);
                case "rstrip" -> strip(s, chars(a, 0), false, true);
                case "startswith" -> affix(s, a, true);
                case "endswith" -> affix(s, a, false);
                case "split" -> split(s, chars(a, 0), a.length > 1 ? ((Number) a[1]).intValue() : -1);
                case "upper" -> s.toUpperCase(Locale.ROOT);
                case "lower" -> s.toLowerCase(Locale.ROOT);
                case "capitalize" -> s.isEmpty() ? s
                        : s.substring(0, s.offsetByCodePoints(0, 1)).toUpperCase(Locale.ROOT)
                                + s.substring(s.offsetByCodePoints(0, 1)).toLowerCase(Locale.ROOT);
                case "replace" ->
                        replace(s, (String) a[0], (String) a[1], a.length > 2 ? ((Number) a[2]).intValue() : -1);
                case "join" -> join(s, a[0]);
                default -> NOT_HANDLED;
            };
            if (result == NOT_HANDLED) return null;
            context.setPropertyResolved(true);
            return result;
        }

        private static final Object NOT_HANDLED = new Object();

        private static String chars(Object[] a, int i) {
            return a.length > i && a[i] != null ? a[i].toString() : null;
        }

        // Python's str.isspace(): Unicode whitespace, including NBSP and U+0085.
        private static boolean space(int cp) {
            return Character.isWhitespace(cp) || Character.isSpaceChar(cp) || cp == 0x85;
        }

        static String strip(String s, String chars, boolean left, boolean right) {
            int from = 0, to = s.length();
            while (left && from < to) {
                int cp = s.codePointAt(from);
                if (chars == null ? !space(cp) : chars.indexOf(cp) < 0) break;
                from += Character.charCount(cp);
            }
            while (right && to > from) {
                int cp = s.codePointBefore(to);
                if (chars == null ? !space(cp) : chars.indexOf(cp) < 0) break;
                to -= Character.charCount(cp);
            }
            return s.substring(from, to);
        }

        private static boolean affix(String s, Object[] a, boolean prefix) {
            List<Object> options = a[0] instanceof Collection<?> c ? new ArrayList<>(c) : List.of(a[0]);
            for (Object o : options)
                if (prefix ? s.startsWith(o.toString()) : s.endsWith(o.toString())) return true;
            return false;
        }

        static List<String> split(String s, String sep, int maxSplit) {
            List<String> out = new ArrayList<>();
            if (sep == null) { // runs of whitespace; no empty strings at either end
                int i = 0, n = s.length();
                while (true) {
                    while (i < n && space(s.codePointAt(i))) i += Character.charCount(s.codePointAt(i));
                    if (i >= n) break;
                    if (maxSplit >= 0 && out.size() == maxSplit) {
                        out.add(strip(s.substring(i), null, false, true));
                        break;
                    }
                    int j = i;
                    while (j < n && !space(s.codePointAt(j))) j += Character.charCount(s.codePointAt(j));
                    out.add(s.substring(i, j));
                    i = j;
                }
                return out;
            }
            if (sep.isEmpty()) throw new Raised("split: empty separator");
            int from = 0;
            while (maxSplit < 0 || out.size() < maxSplit) {
                int at = s.indexOf(sep, from);
                if (at < 0) break;
                out.add(s.substring(from, at));
                from = at + sep.length();
            }
            out.add(s.substring(from));
            return out;
        }

        private static String replace(String s, String old, String with, int count) {
            if (count < 0) return s.replace(old, with);
            StringBuilder out = new StringBuilder();
            int from = 0;
            for (int k = 0; k < count; k++) {
                int at = old.isEmpty() ? (from <= s.length() ? from : -1) : s.indexOf(old, from);
                if (at < 0) break;
                out.append(s, from, at).append(with);
                from = at + old.length();
                if (old.isEmpty() && from < s.length()) out.append(s.charAt(from++));
            }
            return out.append(s.substring(Math.min(from, s.length()))).toString();
        }

        private static String join(String sep, Object items) {
            StringBuilder out = new StringBuilder();
            Iterable<?> it = items instanceof Iterable<?> i ? i : List.of(items);
            boolean first = true;
            for (Object o : it) {
                if (!first) out.append(sep);
                out.append(o);
                first = false;
            }
            return out.toString();
        }

        @Override
        public Object getValue(ELContext context, Object base, Object property) {
            return null;
        }

        @Override
        public Class<?> getType(ELContext context, Object base, Object property) {
            return null;
        }

        @Override
        public void setValue(ELContext context, Object base, Object property, Object value) {}

        @Override
        public boolean isReadOnly(ELContext context, Object base, Object property) {
            return true;
        }

        @Override
        public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
            return null;
        }

        @Override
        public Class<?> getCommonPropertyType(ELContext context, Object base) {
            return null;
        }
    }

    /**
     * transformers' {@code {% generation %}...{% endgeneration %}}, which marks the assistant's part for
     * {@code return_assistant_tokens_mask}; rendering, it writes its body unchanged.
     */
    static final class Generation implements Tag {
        @Override
        public String getName() {
            return "generation";
        }

        @Override
        public String getEndTagName() {
            return "endgeneration";
        }

        @Override
        public String interpret(TagNode tag, JinjavaInterpreter interpreter) {
            StringBuilder out = new StringBuilder();
            for (Node child : tag.getChildren()) out.append(child.render(interpreter).getValue());
            return out.toString();
        }
    }

    /** transformers' {@code tojson}: Python's {@code json.dumps(x, ensure_ascii=False, indent=None)} by default. */
    static final class ToJson implements AdvancedFilter {
        @Override
        public String getName() {
            return "tojson";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object indent = kwargs.get("indent");
            boolean ensureAscii = Boolean.TRUE.equals(kwargs.get("ensure_ascii"));
            boolean sortKeys = Boolean.TRUE.equals(kwargs.get("sort_keys"));
            String itemSep = indent == null ? ", " : ",", keySep = ": ";
            if (kwargs.get("separators") instanceof List<?> seps && seps.size() == 2) {
                itemSep = seps.get(0).toString();
                keySep = seps.get(1).toString();
            }
            String pad = indent == null ? null
                    : indent instanceof Number n ? " ".repeat(n.intValue()) : indent.toString();
            StringBuilder out = new StringBuilder();
            new PyJson(pad, itemSep, keySep, ensureAscii, sortKeys).write(out, var, 0);
            return out.toString();
        }
    }

    /** Python's json.dumps layout: separators, indentation, escapes, float repr. */
    record PyJson(String indent, String itemSep, String keySep, boolean ensureAscii, boolean sortKeys) {
        void write(StringBuilder out, Object v, int depth) {
            switch (v) {
                case null -> out.append("null");
                case Boolean b -> out.append(b);
                case String s -> string(out, s);
                case Character c -> string(out, c.toString());
                case Double d -> out.append(floatRepr(d));
                case Float f -> out.append(floatRepr(f.doubleValue()));
                case BigDecimal d -> out.append(floatRepr(d.doubleValue()));
                case Number n -> out.append(n);
                case Map<?, ?> m -> {
                    List<Map.Entry<?, ?>> entries = new ArrayList<>(m.entrySet());
                    if (sortKeys) entries.sort((x, y) -> key(x.getKey()).compareTo(key(y.getKey())));
                    open(out, '{', '}', entries.size(), depth, (i) -> {
                        string(out, key(entries.get(i).getKey()));
                        out.append(keySep);
                        write(out, entries.get(i).getValue(), depth + 1);
                    });
                }
                case Iterable<?> it -> {
                    List<Object> items = new ArrayList<>();
                    it.forEach(items::add);
                    open(out, '[', ']', items.size(), depth, (i) -> write(out, items.get(i), depth + 1));
                }
                default -> {
                    if (!v.getClass().isArray())
                        throw new Raised("tojson: cannot serialise a " + v.getClass().getName());
                    List<Object> items = new ArrayList<>();
                    for (int i = 0; i < Array.getLength(v); i++) items.add(Array.get(v, i));
                    write(out, items, depth);
                }
            }
        }

        private interface Item {
            void write(int i);
        }

        private void open(StringBuilder out, char open, char close, int n, int depth, Item item) {
            out.append(open);
            if (n == 0) {
                out.append(close);
                return;
            }
            for (int i = 0; i < n; i++) {
                if (i > 0) out.append(itemSep);
                if (indent != null) out.append('\n').append(indent.repeat(depth + 1));
                item.write(i);
            }
            if (indent != null) out.append('\n').append(indent.repeat(depth));
            out.append(close);
        }

        private static String key(Object k) {
            if (k instanceof String s) return s;
            if (k == null) return "null";
            if (k instanceof Boolean b) return b.toString();
            if (k instanceof Number) return k.toString();
            throw new Raised("tojson: keys must be str, int, float, bool or None, not " + k.getClass().getName());
        }

        private void string(StringBuilder out, String s) {
            out.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> out.append("\\\"");
                    case '\\' -> out.append("\\\\");
                    case '\n' -> out.append("\\n");
                    case '\r' -> out.append("\\r");
                    case '\t' -> out.append("\\t");
                    case '\b' -> out.append("\\b");
                    case '\f' -> out.append("\\f");
                    default -> {
                        if (c < 0x20 || (ensureAscii && c > 0x7e)) out.append(String.format("\\u%04x", (int) c));
                        else out.append(c);
                    }
                }
            }
            out.append('"');
        }

        /** Python's float repr: shortest round-trip digits, exponent form outside [1e-4, 1e16). */
        static String floatRepr(double d) {
            if (Double.isNaN(d)) return "NaN";
            if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
            if (d == 0) return (1 / d < 0) ? "-0.0" : "0.0";
            BigDecimal x = new BigDecimal(Double.toString(d)).stripTrailingZeros();
            String digits = x.unscaledValue().abs().toString();
            int exp = digits.length() - 1 - x.scale(); // d = digits[0].digits[1:] * 10^exp
            String sign = d < 0 ? "-" : "";
            if (exp >= 16 || exp < -4) {
                String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
                return sign + mantissa + "e" + (exp < 0 ? "-" : "+") + two(Math.abs(exp));
            }
            String plain = x.abs().toPlainString();
            return sign + (plain.contains(".") ? plain : plain + ".0");
        }
    }
}
