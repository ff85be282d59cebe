package io.github.rlhf4j.tensor;

import io.github.rlhf4j.runtime.Device;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * The tape autograd. Each op that has an input requiring a gradient records a {@link Node} on its output: the op's
 * name, its inputs, and a closure that turns the output's gradient into the inputs' gradients. {@link #backward}
 * walks the nodes from the loss in reverse topological order.
 *
 * <p>Gradient memory: the engine owns the gradient buffers of intermediate tensors in a scope of its own and frees
 * each one as soon as the node that consumes it is done, so a backward pass needs memory for a few layers' gradients,
 * not all of them. A node's incoming gradient, dead once the node has run, may become one input's gradient without a
 * copy (a reshape or add backward costs nothing); any second use copies. Parameters accumulate straight into their
 * gradient buffers (views of the model's flat gradient), and ops write an input's gradient in place when that is its
 * first contribution, so most gradients are never zero-filled or added twice.
 *
 * <p>Not supported: gradients of gradients (backward runs without recording).
 */
public final class Autograd {
    private static final ThreadLocal<int[]> DISABLED = ThreadLocal.withInitial(() -> new int[1]);

    private Autograd() {}

    /** Whether ops on this thread record the tape. */
    public static boolean isEnabled() {
        return DISABLED.get()[0] == 0;
    }

    /** Stops recording on this thread until the returned guard closes (inference, optimizer steps, experience). */
    public static NoGrad noGrad() {
        int[] d = DISABLED.get();
        d[0]++;
        return new NoGrad(d);
    }

    /** Guard returned by {@link #noGrad()}. */
    public static final class NoGrad implements AutoCloseable {
        private final int[] counter;
        private boolean closed;

        private NoGrad(int[] counter) {
            this.counter = counter;
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                counter[0]--;
            }
        }
    }

    /**
     * Re-enables recording on this thread until the returned guard closes, whatever {@link #noGrad} guards are open
     * (gradient checkpointing re-runs a forward inside a backward pass, which runs under noGrad).
     */
    static GradOn enableGrad() {
        int[] d = DISABLED.get();
        GradOn g = new GradOn(d, d[0]);
        d[0] = 0;
        return g;
    }

    /** Guard returned by {@link #enableGrad()}: restores the noGrad depth it found. */
    record GradOn(int[] counter, int saved) implements AutoCloseable {
        @Override
        public void close() {
            counter[0] = saved;
        }
    }

    /**
     * Gradient checkpointing (torch.utils.checkpoint): runs {@code fn} on {@code inputs} without recording and keeps
     * only its inputs and output; the backward pass runs {@code fn} again with recording on and back-propagates
     * through that second graph. The activations inside {@code fn} (a transformer layer's attention, MLP, norms) then
     * live only while that layer's backward runs, instead of from the forward to the backward: memory of one layer's
     * activations instead of all of them, for one more forward per layer.
     *
     * <p>{@code fn} must compute the same thing both times: a caller with dropout replays the same masks (see
     * {@code Transformer}). Tensors {@code fn} captures instead of taking as inputs (masks, positions, parameters)
     * must not be modified before the backward; parameters captured this way still get their gradients, through
     * the recomputed graph. Without recording enabled, it is just {@code fn.apply(inputs)}.
     */
    public static Tensor checkpoint(String name, java.util.function.Function<Tensor[], Tensor> fn, Tensor... inputs) {
        if (!isEnabled()) return fn.apply(inputs);
        Scope parent = Scope.current();
        Tensor out;
        // the first forward's activations die with this scope; only the output moves to the caller's scope
        try (NoGrad ignored = noGrad(); Scope tmp = Scope.open(parent.device())) {
            out = fn.apply(inputs);
            if (out.storage.owner == tmp) parent.adopt(out);
        }
        // a fresh tensor over the output's memory: a view of an input must not take the input's place in the graph
        out = out.detach();
        return record("checkpoint(" + name + ")", out, inputs.clone(), (gradOut, grads) -> {
            Tensor[] again = new Tensor[inputs.length];
            for (int i = 0; i < inputs.length; i++) {
                if (inputs[i] == null) continue;
                again[i] = inputs[i].detach();
                if (grads.needs(i)) again[i].requiresGrad(true);
            }
            Tensor recomputed;
            try (GradOn on = enableGrad()) {
                recomputed = fn.apply(again);
            }
            if (!recomputed.requiresGrad()) return; // nothing inside needs a gradient
            for (int i = 0; i < inputs.length; i++) {
                Target t = grads.target(i);
                if (t == null) continue;
                if (!t.accumulate()) t.dst().fill(0);
                again[i].setGrad(t.dst());
            }
            backward(recomputed, gradOut, false);
        });
    }

    /** What a {@link #region} runs around its forward and its backward. */
    public interface RegionHooks {
        /** After the region's forward has run (recording or not). */
        void afterForward();

        /** After the region's backward has run: every gradient it writes is complete. */
        void afterBackward();

        /** Before the region's backward runs (ZeRO stage 3 starts gathering the layer that comes after it). */
        default void beforeBackward() {}
    }

    /**
     * Runs {@code fn} on {@code x} as one node of the graph, recording {@code fn}'s own ops on a tape of their own:
     * the outer backward reaches the region once, back-propagates through the whole inner tape there, and then
     * calls {@code hooks.afterBackward()}, when every gradient inside (the layer's parameters', through any op,
     * parameter-only ops included) is final. ZeRO stage 2 reduce-scatters a layer's gradients at that point and
     * stage 3 also frees the layer's gathered parameters; {@code hooks.afterForward()} is where stage 3 frees them
     * after the forward. Without recording, it runs {@code fn} and {@code afterForward}. Gradients are exactly those
     * of running {@code fn} inline.
     */
    public static Tensor region(String name, java.util.function.UnaryOperator<Tensor> fn, Tensor x, RegionHooks hooks) {
        if (!isEnabled()) {
            Tensor out = fn.apply(x);
            hooks.afterForward();
            return out;
        }
        Tensor in = x.detach();
        if (x.requiresGrad()) in.requiresGrad(true);
        Tensor inner = fn.apply(in);
        hooks.afterForward();
        if (!inner.requiresGrad()) return inner;
        Tensor out = inner.detach();
        return record("region(" + name + ")", out, new Tensor[] {x}, (gradOut, grads) -> {
            Target t = grads.target(0);
            if (t != null) {
                if (!t.accumulate()) t.dst().fill(0);
                in.setGrad(t.dst());
            }
            hooks.beforeBackward();
            backward(inner, gradOut, false);
            hooks.afterBackward();
        });
    }

    /** True when an op with these inputs must record a node. */
    static boolean needsGrad(Tensor... inputs) {
        if (!isEnabled()) return false;
        for (Tensor t : inputs)
            if (t != null && t.requiresGrad()) return true;
        return false;
    }

    /** Makes {@code out} the output of a recorded op. Null inputs (absent optional arguments) are allowed. */
    static Tensor record(String op, Tensor out, Tensor[] inputs, BackwardFn fn) {
        out.setGradFn(new Node(op, inputs, out, fn));
        return out;
    }

    /** How an op turns its output's gradient into its inputs' gradients. */
    @FunctionalInterface
    interface BackwardFn {
        void apply(Tensor gradOut, Grads grads);
    }

    /** Writes a gradient into {@code dst}: overwrite when {@code accumulate} is false, add when true. */
    @FunctionalInterface
    interface GradWriter {
        void write(Tensor dst, boolean accumulate);
    }

    /** A gradient buffer and whether the op must add to it (true) or overwrite it (false). */
    record Target(Tensor dst, boolean accumulate) {}

    /** A recorded op. */
    static final class Node {
        final String op;
        final Tensor[] inputs;
        private final Storage[] storages;
        private final int[] versions;
        private BackwardFn fn;

        Node(String op, Tensor[] inputs, Tensor out, BackwardFn fn) {
            this.op = op;
            this.inputs = inputs;
            this.fn = fn;
            this.storages = new Storage[inputs.length + 1];
            this.versions = new int[inputs.length + 1];
            for (int i = 0; i < inputs.length; i++) {
                if (inputs[i] == null) continue;
                storages[i] = inputs[i].storage;
                versions[i] = inputs[i].storage.version;
            }
            storages[inputs.length] = out.storage;
            versions[inputs.length] = out.storage.version;
        }

        /** "layerNorm([4, 8] f32, [8] f32, [8] f32)": the op and its inputs, for error messages (built on demand). */
        String signature() {
            StringBuilder sig = new StringBuilder(op).append('(');
            for (int i = 0; i < inputs.length; i++) {
                if (i > 0) sig.append(", ");
                sig.append(inputs[i] == null ? "null" : inputs[i].describe());
            }
            return sig.append(')').toString();
        }

        boolean isReleased() {
            return fn == null;
        }

        void release() {
            fn = null;
        }

        void checkUsable() {
            if (fn == null)
                throw new IllegalStateException("backward through a graph that was already freed, at " + signature()
                        + ": a backward pass frees the graph it walks; pass retainGraph=true to the first backward "
                        + "to run another");
            for (int i = 0; i < storages.length; i++) {
                Storage st = storages[i];
                if (st == null) continue;
                if (st.isReleased())
                    throw new IllegalStateException("backward through " + signature() + ": a tensor it saved was freed "
                            + "(its Scope closed before backward ran)");
                if (st.version != versions[i])
                    throw new IllegalStateException("backward through " + signature() + ": a tensor it saved was "
                            + "modified in place after the forward pass, so its gradient would be wrong");
            }
        }
    }

    /** What a node's backward closure sees: which inputs need gradients, and where to put them. */
    static final class Grads {
        private final Engine engine;
        private Node node;

        private Grads(Engine engine) {
            this.engine = engine;
        }

        /** Whether input {@code i} needs a gradient. */
        boolean needs(int i) {
            Tensor t = node.inputs[i];
            return t != null && t.requiresGrad();
        }

        /** Input {@code i}'s gradient buffer, contiguous, with the accumulate flag to pass to the native op. */
        void write(int i, GradWriter w) {
            if (!needs(i)) return;
            Target t = engine.target(node.inputs[i]);
            w.write(t.dst(), t.accumulate());
        }

        /**
         * Input {@code i}'s gradient buffer and accumulate flag, or null when it needs none, for native ops that
         * write several gradients in one call. The caller must write it (overwrite when the flag is false).
         */
        Target target(int i) {
            return needs(i) ? engine.target(node.inputs[i]) : null;
        }

        /** Like {@link #target}, for gradients a native op can only add to (a fresh buffer is zero-filled). */
        Tensor accumulating(int i) {
            if (!needs(i)) return null;
            Target t = engine.target(node.inputs[i]);
            if (!t.accumulate()) t.dst().fill(0);
            return t.dst();
        }

        /** Like {@link #write}, for native ops that can only add: a fresh buffer is zero-filled first. */
        void accumulate(int i, Consumer<Tensor> w) {
            Tensor dst = accumulating(i);
            if (dst != null) w.accept(dst);
        }

        /** Adds {@code g} (input {@code i}'s shape, any strides) to input {@code i}'s gradient. */
        void add(int i, Tensor g) {
            if (!needs(i)) return;
            engine.add(node.inputs[i], g, node);
        }
    }

    /** One backward pass. */
    private static final class Engine {
        private final Scope scope;
        private final Map<Node, Tensor> grads = new IdentityHashMap<>();
        /** Slots (node gradients) that currently use each storage the engine owns. */
        private final Map<Storage, Integer> refs = new IdentityHashMap<>();
        private Scope nodeScope;

        Engine(Scope scope) {
            this.scope = scope;
        }

        private void setSlot(Node n, Tensor g) {
            grads.put(n, g);
            refs.merge(g.storage, 1, Integer::sum);
        }

        private Tensor takeSlot(Node n) {
            Tensor g = grads.remove(n);
            if (g != null) refs.merge(g.storage, -1, Integer::sum);
            return g;
        }

        private void releaseIfDead(Tensor g) {
            if (g.storage.owner == scope && refs.getOrDefault(g.storage, 0) == 0) {
                refs.remove(g.storage);
                g.storage.release();
            }
        }

        /** The gradient buffer of {@code input}, registered as its gradient now; fresh ones must be overwritten. */
        Target target(Tensor input) {
            Node n = input.gradFn();
            if (n == null) { // leaf: its .grad lives with it and accumulates across backward passes
                Tensor g = input.gradOrNull();
                if (g != null) return new Target(g, true);
                g = input.storage.owner.empty(input.dtype(), input.shape());
                input.setGrad(g);
                return new Target(g, false);
            }
            Tensor g = grads.get(n);
            if (g != null) return new Target(g, true);
            g = scope.empty(input.dtype(), input.shape());
            setSlot(n, g);
            return new Target(g, false);
        }

        void write(Tensor input, GradWriter w) {
            Target t = target(input);
            w.write(t.dst(), t.accumulate());
        }

        void add(Tensor input, Tensor g, Node from) {
            if (!java.util.Arrays.equals(g.shape(), input.shape()))
                throw new IllegalStateException("internal: " + from.signature() + " produced a gradient of shape "
                        + Shape.str(g.shape()) + " for an input of shape " + Shape.str(input.shape()));
            Node n = input.gradFn();
            if (n != null && !grads.containsKey(n) && g.isContiguous() && g.dtype() == input.dtype()) {
                // Take the buffer over instead of copying, when no other slot uses it: a temporary of this node
                // (moved out of the node's scope) or a dead incoming gradient.
                Storage st = g.storage;
                if (st.owner == nodeScope) scope.adopt(g);
                if (st.owner == scope && refs.getOrDefault(st, 0) == 0) {
                    setSlot(n, g);
                    return;
                }
            }
            write(input, (dst, acc) -> dst.copyFromTensor(g, acc));
        }

        void run(Node root, Tensor seed, boolean retainGraph, Device device) {
            List<Node> order = topologicalOrder(root);
            setSlot(root, seed);
            Grads view = new Grads(this);
            for (Node n : order) {
                Tensor g = takeSlot(n);
                if (g == null) continue; // no gradient reaches this node
                n.checkUsable();
                view.node = n;
                try (Scope tmp = Scope.open(device)) {
                    nodeScope = tmp;
                    n.fn.apply(g, view);
                } finally {
                    nodeScope = null;
                }
                releaseIfDead(g);
            }
            if (!retainGraph) for (Node n : order) n.release();
        }
    }

    /** Nodes reachable from {@code root}, each after every node that consumes its output. */
    private static List<Node> topologicalOrder(Node root) {
        List<Node> post = new ArrayList<>();
        Map<Node, Boolean> seen = new IdentityHashMap<>();
        ArrayDeque<Object[]> stack = new ArrayDeque<>();
        stack.push(new Object[] {root, 0});
        seen.put(root, Boolean.TRUE);
        while (!stack.isEmpty()) {
            Object[] top = stack.peek();
            Node n = (Node) top[0];
            int i = (Integer) top[1];
            if (i < n.inputs.length) {
                top[1] = i + 1;
                Tensor in = n.inputs[i];
                Node child = in == null ? null : in.gradFn();
                if (child != null && seen.put(child, Boolean.TRUE) == null) stack.push(new Object[] {child, 0});
            } else {
                stack.pop();
                post.add(n);
            }
        }
        java.util.Collections.reverse(post);
        return post;
    }

    /**
     * Back-propagates from {@code root}, whose gradient is {@code seed} (ones for a scalar when null), into the
     * {@code grad} of every leaf that requires one.
     */
    static void backward(Tensor root, Tensor seed, boolean retainGraph) {
        if (!root.requiresGrad())
            throw new IllegalStateException("backward: " + root.describe() + " does not require grad (no input of the "
                    + "ops that made it requires grad, or it was made under Autograd.noGrad())");
        if (seed == null && root.numel() != 1)
            throw new IllegalArgumentException("backward: " + root.describe() + " is not a scalar; pass the gradient "
                    + "of the output explicitly");
        if (seed != null && !java.util.Arrays.equals(seed.shape(), root.shape()))
            throw new IllegalArgumentException("backward: gradient " + seed.describe() + " does not match "
                    + root.describe());
        Node node = root.gradFn();
        if (seed == null) {
            double v = root.item();
            if (!Double.isFinite(v))
                throw new ArithmeticException("backward: the loss is " + v + (node == null ? ""
                        : ", produced by " + node.signature()) + "; check the inputs and the learning rate");
        }
        if (node != null && node.isReleased()) node.checkUsable(); // throws the graph-freed message
        Device device = root.device();
        try (NoGrad ignored = noGrad(); Scope bw = Scope.open(device)) {
            Tensor s = seed != null ? seed.contiguous() : bw.full(root.dtype(), 1.0, root.shape());
            if (node == null) { // a leaf: its gradient is the seed
                Tensor g = root.gradOrNull();
                if (g == null) {
                    g = root.storage.owner.empty(root.dtype(), root.shape());
                    g.copyFromTensor(s, false);
                    root.setGrad(g);
                } else {
                    g.copyFromTensor(s, true);
                }
                return;
            }
            if (s.storage.owner != bw) s = s.copy(bw);
            new Engine(bw).run(node, s, retainGraph, device);
        }
    }
}
