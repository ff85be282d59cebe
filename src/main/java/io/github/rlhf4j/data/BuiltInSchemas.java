package io.github.rlhf4j.data;

/** The schemas behind {@link RowSchema}'s constants. */
final class BuiltInSchemas {
    private BuiltInSchemas() {}

    static final String NAMES = "rm-static, hh-rlhf, prompt and text";
    static final String DESCRIPTIONS = "rm-static (prompt, chosen, rejected[, response]), hh-rlhf (chosen, rejected),"
            + " prompt (prompt) and text (text)";

    /** Where the assistant's turn starts in DeepSpeed-Chat's and Anthropic's conversation form. */
    static final String ASSISTANT = "\n\nAssistant:";

    static final class RmStatic implements RowSchema {
        @Override
        public String name() {
            return "rm-static";
        }

        @Override
        public Row map(RawRow r) throws BadRowException {
            return new PreferenceRow(r.text("prompt"), r.text("chosen"), r.text("rejected"));
        }

        @Override
        public String toString() {
            return name();
        }
    }

    static final class HhRlhf implements RowSchema {
        @Override
        public String name() {
            return "hh-rlhf";
        }

        @Override
        public Row map(RawRow r) throws BadRowException {
            String chosen = r.text("chosen"), rejected = r.text("rejected");
            int common = 0, max = Math.min(chosen.length(), rejected.length());
            while (common < max && chosen.charAt(common) == rejected.charAt(common)) common++;
            // The common part may run into the answers (" I think..." on both sides): cut back to the last turn start.
            int at = chosen.lastIndexOf(ASSISTANT, common - ASSISTANT.length());
            if (at < 0) throw new BadRowException(SkipReason.MALFORMED,
                    "'chosen' and 'rejected' share no \"\\n\\nAssistant:\" turn");
            int end = at + ASSISTANT.length();
            String a = chosen.substring(end), b = rejected.substring(end);
            if (a.isBlank()) throw new BadRowException(SkipReason.EMPTY_TEXT, "the chosen answer is empty");
            if (b.isBlank()) throw new BadRowException(SkipReason.EMPTY_TEXT, "the rejected answer is empty");
            return new PreferenceRow(chosen.substring(0, end), a, b);
        }

        @Override
        public String toString() {
            return name();
        }
    }

    static final class PromptOnly implements RowSchema {
        @Override
        public String name() {
            return "prompt";
        }

        @Override
        public Row map(RawRow r) throws BadRowException {
            return new PromptRow(r.text("prompt"));
        }

        @Override
        public String toString() {
            return name();
        }
    }

    static final class PlainText implements RowSchema {
        @Override
        public String name() {
            return "text";
        }

        @Override
        public Row map(RawRow r) throws BadRowException {
            return new TextRow(r.text("text"));
        }

        @Override
        public String toString() {
            return name();
        }
    }
}
