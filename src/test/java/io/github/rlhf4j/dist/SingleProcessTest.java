package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** A world of one: the collectives are identities (copies where the output is another buffer), nothing is sent. */
class SingleProcessTest {
    private Scope scope;
    private final SingleProcess comm = new SingleProcess();

    @BeforeEach
    void open() {
        scope = Scope.open();
    }

    @AfterEach
    void close() {
        scope.close();
    }

    @Test
    void collectivesAreIdentitiesAndCopies() {
        assertEquals(0, comm.rank());
        assertEquals(1, comm.worldSize());
        assertEquals(0, comm.localRank());
        Tensor x = Tensor.of(new float[] {1.5f, -2, 3});
        comm.allReduce(x);
        comm.allReduce(x, ReduceOp.MAX);
        comm.broadcast(x, 0);
        assertArrayEquals(new float[] {1.5f, -2, 3}, x.toFloatArray());

        Tensor shard = Tensor.zeros(DType.F32, 3);
        comm.reduceScatter(x, shard);
        assertArrayEquals(new float[] {1.5f, -2, 3}, shard.toFloatArray());
        Tensor gathered = Tensor.zeros(DType.F32, 3);
        comm.allGather(Tensor.of(new float[] {4, 5, 6}), gathered);
        assertArrayEquals(new float[] {4, 5, 6}, gathered.toFloatArray());
        // in place: the shard is the whole buffer
        comm.allGather(gathered.slice(0, 0, 3), gathered);
        assertArrayEquals(new float[] {4, 5, 6}, gathered.toFloatArray());
        assertArrayEquals(new long[] {42}, comm.allGather(42));
        comm.checkSame("seed", "1");
    }

    @Test
    void countsCallsButNoBytes() {
        comm.allReduce(Tensor.zeros(DType.F32, 100));
        comm.allReduce(Tensor.zeros(DType.BF16, 100));
        comm.reduceScatter(Tensor.zeros(DType.F32, 10), Tensor.zeros(DType.F32, 10));
        comm.barrier();
        Traffic t = comm.bytesMoved();
        assertEquals(2, t.calls(Collective.ALL_REDUCE));
        assertEquals(1, t.calls(Collective.REDUCE_SCATTER));
        assertEquals(1, t.calls(Collective.BARRIER));
        assertEquals(0, t.totalBytes());
        comm.resetTraffic();
        assertEquals(0, comm.bytesMoved().calls(Collective.ALL_REDUCE));
    }

    @Test
    void badCallsFailWithTheirReason() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> comm.reduceScatter(Tensor.zeros(DType.F32, 4), Tensor.zeros(DType.F32, 3)));
        assertTrue(e.getMessage().contains("worldSize (1) blocks"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> comm.broadcast(Tensor.zeros(DType.F32, 2), 1));
        assertTrue(e.getMessage().contains("root 1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> comm.allGather(Tensor.zeros(DType.F32, 2), Tensor.zeros(DType.F64, 2)));
        assertTrue(e.getMessage().contains("dtype"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> comm.allReduce(Tensor.zeros(DType.F32, 2, 3).transpose(0, 1)));
        assertTrue(e.getMessage().contains("not contiguous"), e.getMessage());
        comm.close();
        var closed = assertThrows(IllegalStateException.class, comm::barrier);
        assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
    }
}
