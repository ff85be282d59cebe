#!/usr/bin/env python3
"""The PyTorch peer of `rlhf4j bench data-parallel`: data-parallel training steps of a random-weight OPT causal LM
(transformers, the config.json files rlhf4j ships, fp32, dropout 0) over --world processes on this machine (gloo),
each rank --batch random sequences of --seq-len tokens, with PyTorch's own counterpart of each ZeRO stage:

    stage 0: DistributedDataParallel (gradients all-reduced), AdamW on every rank
    stage 1: DDP + ZeroRedundancyOptimizer(AdamW) (optimizer state partitioned, parameters broadcast after the step)
    stage 2: FSDP2 fully_shard per decoder layer, reshard_after_forward=False (gradients and optimizer state sharded)
    stage 3: FSDP2 fully_shard per decoder layer, reshard_after_forward=True (parameters sharded too)

AdamW as DS-Chat's (betas 0.9, 0.95; eps 1e-8; weight decay 0; lr 1e-4), gradients clipped to norm 1, as rlhf4j's
step. Each step sits between two barriers, so its time is the slowest rank's. Prints each timed step and, last, one
JSON line with the keys of `rlhf4j bench data-parallel --json`. Not part of rlhf4j's build or tests.

    python3 bench/peers/dp_torch.py --model opt-125m --world 2 --zero-stage 3 --threads 1
"""
import argparse, json, os, socket, statistics, sys, time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step3_torch import load_config  # noqa: E402  (the same OPT shapes, dropout 0)


def state_bytes(model, opt):
    """Parameters, gradients and optimizer state this rank holds (its shards under FSDP)."""
    def local(t):
        return t.to_local() if hasattr(t, "to_local") else t
    n = 0
    for p in model.parameters():
        n += local(p).numel() * local(p).element_size()
        if p.grad is not None:
            n += local(p.grad).numel() * local(p.grad).element_size()
    inner = opt.optim if hasattr(opt, "optim") else opt  # ZeroRedundancyOptimizer wraps this rank's AdamW
    for st in inner.state.values():
        for v in st.values():
            if torch.is_tensor(v) and v.dim() > 0:
                n += local(v).numel() * local(v).element_size()
    return n


def worker(rank, args, port, queue):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=args.world)
    torch.set_num_threads(args.threads)
    from transformers import OPTForCausalLM
    config, label = load_config(args.model)
    torch.manual_seed(args.seed)
    model = OPTForCausalLM(config).float()
    model.train()
    betas, eps, lr = (0.9, 0.95), 1e-8, 1e-4
    if args.zero_stage <= 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model)
        if args.zero_stage == 0:
            opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=0.0)
        else:
            from torch.distributed.optim import ZeroRedundancyOptimizer
            opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.AdamW, lr=lr, betas=betas,
                                          eps=eps, weight_decay=0.0)
    else:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        mesh = init_device_mesh("cpu", (args.world,))
        reshard = args.zero_stage == 3
        for layer in model.model.decoder.layers:
            fully_shard(layer, mesh=mesh, reshard_after_forward=reshard)
        fully_shard(model, mesh=mesh, reshard_after_forward=reshard)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=0.0)
    params = config_params(config)
    g = torch.Generator().manual_seed(args.seed * 1000 + rank)
    vocab = config.vocab_size
    times = []
    for i in range(args.warmup + args.steps):
        ids = torch.randint(0, vocab, (args.batch, args.seq_len), generator=g)
        targets = torch.randint(0, vocab, (args.batch, args.seq_len), generator=g)
        targets[:, -1] = -100
        dist.barrier()
        t0 = time.perf_counter()
        logits = model(input_ids=ids, use_cache=False).logits
        loss = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        dist.barrier()
        t = (time.perf_counter() - t0) * 1e3
        if i >= args.warmup:
            times.append(t)
            if rank == 0:
                print(f"step {i - args.warmup + 1}: {t:.1f} ms", flush=True)
    if rank == 0:
        queue.put(dict(impl="torch", peer=PEERS[args.zero_stage], model=label, world=args.world,
                       zero_stage=args.zero_stage, batch_per_rank=args.batch, seq_len=args.seq_len,
                       threads_per_rank=args.threads, parameters=params, ms_per_step=statistics.median(times),
                       tokens_per_s=args.world * args.batch * args.seq_len / (statistics.median(times) / 1e3),
                       model_states_bytes_rank0=state_bytes(model, opt), ms_each=times,
                       torch=torch.__version__))
    dist.destroy_process_group()


def config_params(config):
    from transformers import OPTForCausalLM
    with torch.device("meta"):
        return sum(p.numel() for p in OPTForCausalLM(config).parameters())


PEERS = {0: "DDP", 1: "DDP + ZeroRedundancyOptimizer", 2: "FSDP2 reshard_after_forward=False",
         3: "FSDP2 reshard_after_forward=True"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="opt-125m")
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--zero-stage", type=int, default=0, choices=[0, 1, 2, 3])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the JSON object here")
    args = ap.parse_args()
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, args, port, queue)) for r in range(args.world)]
    for p in procs:
        p.start()
    result = queue.get()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"dp_torch.py: a rank exited with {p.exitcode}")
    print(f"torch {PEERS[args.zero_stage]}: {result['model']} ({result['parameters']:,} parameters), {args.world} "
          f"rank(s) x {args.batch} x {args.seq_len} tokens, {args.threads} thread(s) per rank: "
          f"{result['ms_per_step']:.1f} ms per step (median of {args.steps}), {result['tokens_per_s']:,.0f} tokens/s, "
          f"{result['model_states_bytes_rank0']:,} bytes of model states on rank 0")
    line = json.dumps(result)
    print(line)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
