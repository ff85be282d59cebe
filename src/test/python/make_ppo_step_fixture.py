#!/usr/bin/env python3
"""Makes src/test/resources/fixtures/ppo_step/: DeepSpeed-Chat's training steps run in PyTorch (float64) on tiny random
GPT-2 models, for rlhf4j's trainers (io.github.rlhf4j.rlhf.PpoStepTest): the same weights, the same batch, and what one
PPO step (two PPO epochs over one experience), one SFT step and one reward-model step compute.

Models (GPT-2: vocab 20, 12 positions, n_embd 16, 2 layers, 2 heads, dropout 0; weights drawn in float32 so that a
float32 and a float64 load see exactly the same values), each a Hugging Face model directory:
  actor/      GPT2LMHeadModel (save_pretrained layout)
  reference/  the actor plus noise: a different model, so the KL rewards are not 0
  critic/     DeepSpeed-Chat's RewardModel (GPT2Model + v_head), saved as rlhf4j and DS-Chat's older releases name it:
              rwtranrsformer.* + v_head.weight
  reward/     another RewardModel, its v_head scaled so that some reward scores pass the +-5 clip
expected.json      the batches, the settings, the experience, and per step the losses and global gradient norms
                   (before clipping); per step too, zeroGradient: the parameter slices whose gradient is 0 in exact
                   arithmetic (checked here to be of rounding size), which a weight comparison must leave out
updated.safetensors  the weights after each step (float64): ppo.epoch{1,2}.{actor,critic}.<name>, sft.<name>,
                   reward.<name>

The steps:
  ppo     DeepSpeedPPOTrainer.generate_experience on a given seq (left-padded prompts, pad = eos as DS-Chat's GPT-2
          tokenizer has it, answers of different lengths, two that fill max_answer_seq_len) without the generation,
          then train_rlhf twice on that experience (--ppo_epochs 2): compute_rewards, the zeroing past the ends, GAE,
          the actor loss, actor backward + step, the critic forward after the actor step, critic loss, critic
          backward + step.
  ppoPositionsFromMask  the same with every model called with the position ids generation uses (cumsum(mask) - 1,
          1 at padding; PositionsFromMask below), rlhf4j's default (PpoConfig.positionsFromMask); losses and gradient
          norms only, no weights (to keep the fixture small).
  sft     step 1: transformers' causal-LM loss (labels = ids, -100 on padding) on prompt + answer + eos rows, one step
          (the loss computed in float64: transformers' ForCausalLMLoss casts the logits to float32 first).
  reward  step 2: RewardModel.forward's pairwise loss on [chosen; rejected] rows, one step.
Every step uses DeepSpeed-Chat's optimizer: torch.optim.AdamW(betas=(0.9, 0.95), eps=1e-8) over
get_optimizer_grouped_parameters (weight decay 0.1 so that the two groups differ), a constant learning rate, and
DeepSpeed's gradient_clipping 1.0 (torch.nn.utils.clip_grad_norm_ before the step).

The DeepSpeed-Chat code below is copied VERBATIM from DeepSpeedExamples (Apache-2.0, Copyright (c) Microsoft
Corporation), applications/DeepSpeed-Chat/:
  dschat/rlhf/ppo_trainer.py          (commit 3b458596b7d44da6fdc64d93bc056810baa26024) gather_log_probs,
                                      DeepSpeedPPOTrainer: __init__'s constants, generate_experience after the
                                      generation, compute_rewards, train_rlhf, actor_loss_fn, critic_loss_fn,
                                      get_advantages_and_returns, train, eval
  dschat/utils/model/reward_model.py  (commit 2babdd3c260d47362dc09873f6a1e2cc16af8feb) RewardModel
  dschat/utils/utils.py               (commit d3aabe3b5a9a8444ddd514ba92558a4d7614c183) get_optimizer_grouped_parameters
Lines changed are marked "# rlhf4j:"; the DeepSpeed engine is replaced by DeepSpeedEngineLike (below), which does what
DeepSpeed does for ZeRO stage 0 in float64: backward, clip, step, zero the gradients.

Regenerate with:  /work/.venv-ref/bin/python src/test/python/make_ppo_step_fixture.py
(--float32 runs the same in float32 and writes nothing: a probe of float32 rounding for the Java tolerances.)
"""
import copy
import json
import os
import shutil
import sys
import types

import safetensors.torch
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model
from dschat_reference import get_optimizer_grouped_parameters  # verbatim DS-Chat, shared by the generators

OUT = os.path.join(os.path.dirname(__file__), "..", "resources", "fixtures", "ppo_step")
DTYPE = torch.float64
if "--float32" in sys.argv:  # a probe of float32 rounding for choosing the Java test's tolerances; writes nothing
    DTYPE = torch.float32




# ==== verbatim from dschat/utils/model/reward_model.py ==============================================================
## Note that the following code is modified from
## https://github.com/CarperAI/trlx/blob/main/examples/summarize_rlhf/reward_model/reward_model.py
class RewardModel(nn.Module):

    def __init__(self,
                 base_model,
                 tokenizer,
                 num_padding_at_beginning=0,
                 compute_fp32_loss=False):
        super().__init__()
        self.config = base_model.config
        self.num_padding_at_beginning = num_padding_at_beginning
        if hasattr(self.config, "word_embed_proj_dim"):
            # `OPT` models use word_embed_proj_dim as final output
            # https://github.com/huggingface/transformers/blob/main/src/transformers/models/opt/modeling_opt.py#L497
            self.v_head = nn.Linear(self.config.word_embed_proj_dim,
                                    1,
                                    bias=False)
        else:
            # `gpt-neo(x)` models use `hidden_size` attribute names instead of `n_embd``
            self.config.n_embd = self.config.hidden_size if hasattr(
                self.config, "hidden_size") else self.config.n_embd
            self.v_head = nn.Linear(self.config.n_embd, 1, bias=False)
        self.rwtransformer = base_model
        self.PAD_ID = tokenizer.pad_token_id
        self.compute_fp32_loss = compute_fp32_loss

    def gradient_checkpointing_enable(self):
        self.rwtransformer.gradient_checkpointing_enable()

    def gradient_checkpointing_disable(self):
        self.rwtransformer.gradient_checkpointing_disable()

    def forward(self,
                input_ids=None,
                past_key_values=None,
                attention_mask=None,
                position_ids=None,
                head_mask=None,
                inputs_embeds=None,
                use_cache=False):
        loss = None

        if self.config.model_type == "llama":
            kwargs = dict()
        else:
            kwargs = dict()  # rlhf4j: was dict(head_mask=head_mask); transformers 5 dropped head_mask (always None here)

        transformer_outputs = self.rwtransformer(
            input_ids,
            past_key_values=past_key_values,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs)

        hidden_states = transformer_outputs[0]
        rewards = self.v_head(hidden_states).squeeze(-1)
        chosen_mean_scores = []
        rejected_mean_scores = []

        # Split the inputs and rewards into two parts, chosen and rejected
        assert len(input_ids.shape) == 2
        bs = input_ids.shape[0] // 2
        seq_len = input_ids.shape[1]

        chosen_ids = input_ids[:bs]  # bs x seq x 1
        rejected_ids = input_ids[bs:]
        chosen_rewards = rewards[:bs]
        rejected_rewards = rewards[bs:]

        # Compute pairwise loss. Only backprop on the different tokens before padding
        loss = 0.
        for i in range(bs):
            chosen_id = chosen_ids[i]
            rejected_id = rejected_ids[i]
            chosen_reward = chosen_rewards[i]
            rejected_reward = rejected_rewards[i]

            c_inds = (chosen_id == self.PAD_ID).nonzero()
            c_ind = c_inds[self.num_padding_at_beginning].item() if len(
                c_inds
            ) > self.num_padding_at_beginning else seq_len  # OPT model pads the first token, so we need to use the second padding token as the end of the sequence
            check_divergence = (chosen_id != rejected_id).nonzero()

            if len(check_divergence) == 0:
                end_ind = rejected_reward.size(-1)
                divergence_ind = end_ind - 1
                r_ind = c_ind
            else:
                # Check if there is any padding otherwise take length of sequence
                r_inds = (rejected_id == self.PAD_ID).nonzero()
                r_ind = r_inds[self.num_padding_at_beginning].item(
                ) if len(r_inds) > self.num_padding_at_beginning else seq_len
                end_ind = max(c_ind, r_ind)
                divergence_ind = check_divergence[0]
            assert divergence_ind > 0
            c_truncated_reward = chosen_reward[divergence_ind:end_ind]
            r_truncated_reward = rejected_reward[divergence_ind:end_ind]
            chosen_mean_scores.append(
                chosen_reward[c_ind - 1])  #use the end score for reference
            rejected_mean_scores.append(rejected_reward[r_ind - 1])

            if self.compute_fp32_loss:
                c_truncated_reward = c_truncated_reward.float()
                r_truncated_reward = r_truncated_reward.float()
            loss += -torch.nn.functional.logsigmoid(c_truncated_reward -
                                                    r_truncated_reward).mean()

        loss = loss / bs
        chosen_mean_scores = torch.stack(chosen_mean_scores)
        rejected_mean_scores = torch.stack(rejected_mean_scores)
        return {
            "loss": loss,
            "chosen_mean_scores": chosen_mean_scores,
            "rejected_mean_scores": rejected_mean_scores,
        }

    def forward_value(self,
                      input_ids=None,
                      attention_mask=None,
                      past_key_values=None,
                      position_ids=None,
                      head_mask=None,
                      inputs_embeds=None,
                      return_value_only=False,
                      prompt_length=0,
                      use_cache=False):

        if self.config.model_type == "llama":
            kwargs = dict()
        else:
            kwargs = dict()  # rlhf4j: was dict(head_mask=head_mask); transformers 5 dropped head_mask (always None here)

        transformer_outputs = self.rwtransformer(
            input_ids,
            past_key_values=past_key_values,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs)
        hidden_states = transformer_outputs[0]
        values = self.v_head(hidden_states).squeeze(-1)
        if return_value_only:
            return values
        else:
            # [0 0 0 0 prompt, answer, 0 0 0 0 ] for step 3, we have padding at the beginning
            # [prompt, answer, 0, 0, 0, 0] this is normal
            assert prompt_length > 1, "prompt_length must be greater than 1 to help select the end score"
            bs = values.size(0)
            seq_len = input_ids.shape[1]
            chosen_end_scores = [
            ]  # we use this name for consistency with the original forward function
            for i in range(bs):
                input_id = input_ids[i]
                value = values[i]

                c_inds = (input_id[prompt_length:] == self.PAD_ID).nonzero()
                # here we only use the answer part of the sequence so we do not need to care about the padding at the beginning
                c_ind = c_inds[0].item() + prompt_length if len(
                    c_inds) > 0 else seq_len
                chosen_end_scores.append(value[c_ind - 1])
            return {
                "values": values,
                "chosen_end_scores": torch.stack(chosen_end_scores),
            }


# ==== verbatim from dschat/rlhf/ppo_trainer.py ======================================================================
def gather_log_probs(logits, labels):
    log_probs = F.log_softmax(logits, dim=-1)
    log_probs_labels = log_probs.gather(dim=-1, index=labels.unsqueeze(-1))
    return log_probs_labels.squeeze(-1)


class DeepSpeedPPOTrainer():

    def __init__(self, rlhf_engine, args):
        self.rlhf_engine = rlhf_engine
        self.actor_model = self.rlhf_engine.actor
        self.critic_model = self.rlhf_engine.critic
        self.ref_model = self.rlhf_engine.ref
        self.reward_model = self.rlhf_engine.reward
        self.tokenizer = self.rlhf_engine.tokenizer
        self.args = args
        self.max_answer_seq_len = args.max_answer_seq_len
        # rlhf4j: end_of_conversation_token_id (used only by generation) and z3_enabled (ZeRO-3) left out
        self.compute_fp32_loss = self.args.compute_fp32_loss

        # In case the generated experience is not valid (too short), we use the last valid
        # generated experience. Alternatively, we can skip the step (on all workers).
        # For now, use the last valid experience which is a simpler solution
        self.last_generated_experience = None

        # Those value can be changed
        self.kl_ctl = 0.1
        self.clip_reward_value = 5
        self.cliprange = 0.2
        self.cliprange_value = 0.2
        self.gamma = 1.0
        self.lam = 0.95
        self.generate_time = 0.0

    def generate_experience(self, prompts, seq):  # rlhf4j: was (self, prompts, mask, step); seq comes in
        self.eval()
        # rlhf4j: generate_start = time.time(); seq = self._generate_sequence(prompts, mask, step); generate_end = ...
        #         (the sequence is given; _generate_sequence's dropping of short answers is checked in Java)
        self.prompt_length = prompts.shape[1]  # rlhf4j: set by _generate_sequence
        if seq is None:
            assert self.last_generated_experience is not None, f'Invalid generated experience at {step=}'
            prompts = self.last_generated_experience['prompts']
            seq = self.last_generated_experience['seq']
        else:
            self.last_generated_experience = {'prompts': prompts, 'seq': seq}
        self.train()

        pad_token_id = self.tokenizer.pad_token_id
        attention_mask = seq.not_equal(pad_token_id).long()
        with torch.no_grad():
            output = self.actor_model(seq, attention_mask=attention_mask)
            output_ref = self.ref_model(seq, attention_mask=attention_mask)
            reward_score = self.reward_model.forward_value(
                seq, attention_mask,
                prompt_length=self.prompt_length)['chosen_end_scores'].detach(
                )
            values = self.critic_model.forward_value(
                seq, attention_mask, return_value_only=True).detach()[:, :-1]

        logits = output.logits
        logits_ref = output_ref.logits
        if self.compute_fp32_loss:
            logits = logits.to(torch.float)
            logits_ref = logits_ref.to(torch.float)

        # rlhf4j: self.generate_time = generate_end - generate_start

        return {
            'prompts': prompts,
            'logprobs': gather_log_probs(logits[:, :-1, :], seq[:, 1:]),
            'ref_logprobs': gather_log_probs(logits_ref[:, :-1, :], seq[:,
                                                                        1:]),
            'value': values,
            'rewards': reward_score,
            'input_ids': seq,
            "attention_mask": attention_mask
        }

    def compute_rewards(self, prompts, log_probs, ref_log_probs, reward_score,
                        action_mask):

        kl_divergence_estimate = -self.kl_ctl * (log_probs - ref_log_probs)
        rewards = kl_divergence_estimate
        start = prompts.shape[1] - 1
        ends = start + action_mask[:, start:].sum(1) + 1
        reward_clip = torch.clamp(reward_score, -self.clip_reward_value,
                                  self.clip_reward_value)
        batch_size = log_probs.shape[0]
        for j in range(batch_size):
            rewards[j, start:ends[j]][-1] += reward_clip[j]

        return rewards

    def train_rlhf(self, inputs):
        # train the rlhf mode here
        ### process the old outputs
        prompts = inputs['prompts']
        log_probs = inputs['logprobs']
        ref_log_probs = inputs['ref_logprobs']
        reward_score = inputs['rewards']
        values = inputs['value']
        attention_mask = inputs['attention_mask']
        seq = inputs['input_ids']

        start = prompts.size()[-1] - 1
        action_mask = attention_mask[:, 1:]

        old_values = values
        with torch.no_grad():
            old_rewards = self.compute_rewards(prompts, log_probs,
                                               ref_log_probs, reward_score,
                                               action_mask)
            ends = start + action_mask[:, start:].sum(1) + 1
            # we need to zero out the reward and value after the end of the conversation
            # otherwise the advantage/return will be wrong
            for i in range(old_rewards.shape[0]):
                old_rewards[i, ends[i]:] = 0
                old_values[i, ends[i]:] = 0
            advantages, returns = self.get_advantages_and_returns(
                old_values, old_rewards, start)

        ### process the new outputs
        batch = {'input_ids': seq, "attention_mask": attention_mask}
        actor_prob = self.actor_model(**batch, use_cache=False).logits
        actor_log_prob = gather_log_probs(actor_prob[:, :-1, :], seq[:, 1:])
        actor_loss = self.actor_loss_fn(actor_log_prob[:, start:],
                                        log_probs[:, start:], advantages,
                                        action_mask[:, start:])
        self.actor_model.backward(actor_loss)

        if not self.args.align_overflow:
            self.actor_model.step()

        value = self.critic_model.forward_value(**batch,
                                                return_value_only=True,
                                                use_cache=False)[:, :-1]
        critic_loss = self.critic_loss_fn(value[:, start:], old_values[:,
                                                                       start:],
                                          returns, action_mask[:, start:])
        self.critic_model.backward(critic_loss)

        # rlhf4j: the args.align_overflow branch (fp16 overflow checks) left out; align_overflow is False here

        self.critic_model.step()

        # rlhf4j: what the fixture records besides the losses
        self.last_ratio = torch.exp(
            (actor_log_prob[:, start:] - log_probs[:, start:]) * action_mask[:, start:]).detach()
        self.last_value_change = (value[:, start:] - old_values[:, start:]).detach()
        self.last_action_mask = action_mask[:, start:]

        return actor_loss, critic_loss

    def actor_loss_fn(self, logprobs, old_logprobs, advantages, mask):
        ## policy gradient loss
        log_ratio = (logprobs - old_logprobs) * mask
        ratio = torch.exp(log_ratio)
        pg_loss1 = -advantages * ratio
        pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - self.cliprange,
                                             1.0 + self.cliprange)
        pg_loss = torch.sum(torch.max(pg_loss1, pg_loss2) * mask) / mask.sum()
        return pg_loss

    def critic_loss_fn(self, values, old_values, returns, mask):
        ## value loss
        values_clipped = torch.clamp(
            values,
            old_values - self.cliprange_value,
            old_values + self.cliprange_value,
        )
        if self.compute_fp32_loss:
            values = values.float()
            values_clipped = values_clipped.float()
        vf_loss1 = (values - returns)**2
        vf_loss2 = (values_clipped - returns)**2
        vf_loss = 0.5 * torch.sum(
            torch.max(vf_loss1, vf_loss2) * mask) / mask.sum()
        return vf_loss

    def get_advantages_and_returns(self, values, rewards, start):
        # Adopted from https://github.com/CarperAI/trlx/blob/main/trlx/models/modeling_ppo.py#L134
        lastgaelam = 0
        advantages_reversed = []
        length = rewards.size()[-1]
        for t in reversed(range(start, length)):
            nextvalues = values[:, t + 1] if t < length - 1 else 0.0
            delta = rewards[:, t] + self.gamma * nextvalues - values[:, t]
            lastgaelam = delta + self.gamma * self.lam * lastgaelam
            advantages_reversed.append(lastgaelam)
        advantages = torch.stack(advantages_reversed[::-1], dim=1)
        returns = advantages + values[:, start:]
        return advantages.detach(), returns

    def train(self):
        self.actor_model.train()
        self.critic_model.train()

    def eval(self):
        self.actor_model.eval()
        self.critic_model.eval()
        self.reward_model.eval()
        self.ref_model.eval()


# ==== the DeepSpeed engine, as far as these steps use it ============================================================
class DeepSpeedEngineLike:
    """A model wrapped as deepspeed.initialize wraps it for DS-Chat at ZeRO stage 0 without mixed precision: calls go
    to the module; backward(loss) is loss.backward(); step() clips the gradients by global norm (the config's
    gradient_clipping, as torch.nn.utils.clip_grad_norm_), steps the optimizer and the (constant) scheduler, and
    zeroes the gradients. It records each step's gradient norm before clipping."""

    def __init__(self, module, lr, weight_decay, max_norm):
        self.module = module
        self.optimizer = torch.optim.AdamW(get_optimizer_grouped_parameters(module, weight_decay), lr=lr,
                                           betas=(0.9, 0.95), eps=1e-8)
        self.max_norm = max_norm
        self.grad_norms = []

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def forward_value(self, *args, **kwargs):
        return self.module.forward_value(*args, **kwargs)

    def backward(self, loss):
        loss.backward()

    def step(self):
        self.last_grads = {n: p.grad.detach().clone() for n, p in self.module.named_parameters()}
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.max_norm)
        self.grad_norms.append(float(norm))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def train(self):
        self.module.train()

    def eval(self):
        self.module.eval()


# ==== the fixture ====================================================================================================
VOCAB, POSITIONS, EMBD, LAYERS, HEADS = 20, 12, 16, 2, 2
EOS = PAD = VOCAB - 1  # GPT-2: pad = eos = the last id
WEIGHT_DECAY, MAX_GRAD_NORM = 0.1, 1.0
ACTOR_LR, CRITIC_LR = 2e-2, 5e-4
SFT_LR, REWARD_LR = 1e-2, 1e-2
PROMPT_LEN, MAX_ANSWER = 6, 6


def gpt2_config():
    return GPT2Config(vocab_size=VOCAB, n_positions=POSITIONS, n_embd=EMBD, n_layer=LAYERS, n_head=HEADS,
                      initializer_range=0.2, bos_token_id=EOS, eos_token_id=EOS, embd_pdrop=0.0, resid_pdrop=0.0,
                      attn_pdrop=0.0, attn_implementation="eager")


def randomize_norms(model, gen):
    """Non-trivial LayerNorm weights and biases, so that a misplaced norm shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("ln_") or ".ln_f" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (1.0 if name.endswith("weight") else 0.0))


def make_models():
    """The four models in float32 (their values are then exact in float64 too), and the tokenizer's pad id."""
    torch.manual_seed(11)
    gen = torch.Generator().manual_seed(12)
    actor = GPT2LMHeadModel(gpt2_config()).float()
    randomize_norms(actor, gen)
    reference = GPT2LMHeadModel(gpt2_config()).float()
    with torch.no_grad():
        for (n, p), (_, q) in zip(actor.named_parameters(), reference.named_parameters()):
            q.copy_(p + 0.05 * torch.randn(p.shape, generator=gen))
    tokenizer = types.SimpleNamespace(pad_token_id=PAD)

    def reward_model(v_head_std):
        base = GPT2Model(gpt2_config()).float()
        randomize_norms(base, gen)
        rm = RewardModel(base, tokenizer, num_padding_at_beginning=0)
        with torch.no_grad():
            rm.v_head.weight.copy_(torch.randn(rm.v_head.weight.shape, generator=gen) * v_head_std)
        return rm

    critic = reward_model(0.3)
    reward = reward_model(1.5)  # scores of several units: some rows pass the +-5 clip
    return actor, reference, critic, reward, tokenizer


def rlhf4j_reward_names(state_dict):
    """DS-Chat's current RewardModel names its base `rwtransformer`; rlhf4j (and DS-Chat before the rename) write
    `rwtranrsformer`."""
    return {("rwtranrsformer." + k[len("rwtransformer."):] if k.startswith("rwtransformer.") else k): v
            for k, v in state_dict.items()}


def save_causal_lm(model, name):
    d = os.path.join(OUT, name)
    model.save_pretrained(d, safe_serialization=True)
    for f in os.listdir(d):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(d, f))


def save_reward_model(model, name):
    d = os.path.join(OUT, name)
    os.makedirs(d)
    model.rwtransformer.config.save_pretrained(d)
    tensors = {k: v.detach().contiguous() for k, v in rlhf4j_reward_names(model.state_dict()).items()}
    safetensors.torch.save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})


def ids_row(gen, n):
    """n random token ids other than the pad/eos id."""
    return torch.randint(0, VOCAB - 1, (n,), generator=gen).tolist()


def ppo_seq(gen):
    """[left-padded prompt | answer, pad-filled]: answers of 6 (fills max_answer_seq_len), 3 + eos, 2 + eos and
    6 tokens. The eos generation stops at is the pad id, as with GPT-2."""
    prompt_lens, answer_lens = [6, 3, 4, 5], [6, 3, 2, 6]
    rows = []
    for p, a in zip(prompt_lens, answer_lens):
        row = [PAD] * (PROMPT_LEN - p) + ids_row(gen, p) + ids_row(gen, a)
        rows.append(row + [EOS] + [PAD] * (PROMPT_LEN + MAX_ANSWER - len(row) - 1) if a < MAX_ANSWER else row)
    return torch.tensor(rows)


def flat(t):
    return [float(v) for v in t.detach().to(torch.float64).flatten().tolist()]


def enc(t):
    if t.dtype in (torch.int64, torch.int32, torch.bool):
        return {"shape": list(t.shape), "dtype": "i32", "data": [int(v) for v in t.flatten().tolist()]}
    return {"shape": list(t.shape), "dtype": "f64", "data": flat(t)}


def snapshot(prefix, named):
    return {prefix + k: v.detach().to(torch.float64).clone().contiguous() for k, v in named.items()}


class PositionsFromMask(nn.Module):
    """rlhf4j's default scoring (PpoConfig.positionsFromMask): the model called with the position ids the answers were
    generated with, cumsum(mask) - 1 and 1 at padding (transformers' generate), where DS-Chat's calls leave the
    model's default arange(T) positions."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids, attention_mask=None, **kwargs):
        position_ids = attention_mask.long().cumsum(-1) - 1
        position_ids.masked_fill_(attention_mask == 0, 1)
        return self.inner(input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)


def run_ppo(actor, reference, critic, reward, tokenizer, seq, updated, positions_from_mask=False):
    """DS-Chat's experience and two train_rlhf calls on seq; the weights after each epoch go to `updated` (if given).
    With positions_from_mask, every model sees generation's positions (PositionsFromMask)."""
    if positions_from_mask:
        actor, reference = PositionsFromMask(actor), PositionsFromMask(reference)
        critic.rwtransformer = PositionsFromMask(critic.rwtransformer)
        reward.rwtransformer = PositionsFromMask(reward.rwtransformer)
    args = types.SimpleNamespace(max_answer_seq_len=MAX_ANSWER, compute_fp32_loss=False, align_overflow=False)
    engine = types.SimpleNamespace(
        actor=DeepSpeedEngineLike(actor, ACTOR_LR, WEIGHT_DECAY, MAX_GRAD_NORM),
        critic=DeepSpeedEngineLike(critic, CRITIC_LR, WEIGHT_DECAY, MAX_GRAD_NORM),
        ref=DeepSpeedEngineLike(reference, 0.0, 0.0, MAX_GRAD_NORM),
        reward=DeepSpeedEngineLike(reward, 0.0, 0.0, MAX_GRAD_NORM),
        tokenizer=tokenizer)
    trainer = DeepSpeedPPOTrainer(engine, args)
    exp = trainer.generate_experience(seq[:, :PROMPT_LEN], seq)
    experience = {k: enc(exp[k]) for k in ("logprobs", "ref_logprobs", "rewards", "value")}  # before train_rlhf
    epochs = []                                                                          # zeroes 'value' in place
    for epoch in (1, 2):
        actor_loss, critic_loss = trainer.train_rlhf(exp)
        mask = trainer.last_action_mask.bool()
        ratio, dv = trainer.last_ratio[mask], trainer.last_value_change[mask]
        clipped = {"ratioAbove": int((ratio > 1.2).sum()), "ratioBelow": int((ratio < 0.8).sum()),
                   "valueAbove": int((dv > 0.2).sum()), "valueBelow": int((dv < -0.2).sum()),
                   "actions": int(mask.sum())}
        # keep the step clear of the kinks of the clipped losses, where rounding would pick a branch
        kink = min(float((ratio - 0.8).abs().min()), float((ratio - 1.2).abs().min()),
                   float((dv.abs() - 0.2).abs().min()))
        epochs.append({"epoch": epoch, "actorLoss": actor_loss.item(), "criticLoss": critic_loss.item(),
                       "actorGradNorm": engine.actor.grad_norms[-1], "criticGradNorm": engine.critic.grad_norms[-1],
                       "clipped": clipped, "distanceToClipKinks": kink})
        exactly_zero_gradients("ppo actor", engine.actor, [KEY_BIAS])
        exactly_zero_gradients("ppo critic", engine.critic, [KEY_BIAS])
        if updated is not None:
            updated.update(snapshot(f"ppo.epoch{epoch}.actor.", dict(actor.named_parameters())))
            updated.update(snapshot(f"ppo.epoch{epoch}.critic.",
                                    rlhf4j_reward_names(dict(critic.named_parameters()))))
        print(f"ppo{' (positions from mask)' if positions_from_mask else ''} epoch {epoch}: actor loss {actor_loss.item():.6f} critic loss {critic_loss.item():.6f} "
              f"grad norms {engine.actor.grad_norms[-1]:.4f} {engine.critic.grad_norms[-1]:.4f} clipped {clipped} "
              f"kink distance {kink:.2e}")
    return {"promptLength": PROMPT_LEN, "seq": enc(seq), "attentionMask": enc(exp["attention_mask"]),
            "actorLr": ACTOR_LR, "criticLr": CRITIC_LR, "zeroGradient": [KEY_BIAS],
            "logprobs": experience["logprobs"], "refLogprobs": experience["ref_logprobs"],
            "rewardScore": experience["rewards"], "values": experience["value"], "epochs": epochs}


def causal_lm_loss(logits, labels, vocab_size, ignore_index=-100):
    """transformers' ForCausalLMLoss (transformers/loss/loss_utils.py, what GPT2LMHeadModel(labels=...) returns) less
    its first line, logits = logits.float(), which would round float64 logits to float32 here."""
    labels = nn.functional.pad(labels, (0, 1), value=ignore_index)
    shift_labels = labels[..., 1:].contiguous()
    logits = logits.view(-1, vocab_size)
    shift_labels = shift_labels.view(-1)
    return nn.functional.cross_entropy(logits, shift_labels, ignore_index=ignore_index, reduction="mean")


def exactly_zero_gradients(model_name, engine, exclusions):
    """Checks that the tensors left out of the weight comparison have a gradient of rounding size only (0 in exact
    arithmetic) in this float64 step, and returns them for the fixture."""
    norm = engine.grad_norms[-1]
    for e in exclusions:
        for n, g in engine.last_grads.items():
            name = rlhf4j_reward_names({n: None}).popitem()[0]
            if name.endswith(e["tensorSuffix"]):
                worst = float(g.flatten()[e["from"]:e["to"]].abs().max())
                assert DTYPE != torch.float64 or worst < 1e-13 * norm, f"{model_name}: {name}[{e['from']}:{e['to']}] has gradient {worst}"
    return exclusions


# The attention key biases: the k third of each c_attn.bias. A key bias shifts every score of a query row equally,
# so its gradient is 0 in exact arithmetic and AdamW's first step turns rounding noise into +-lr there.
KEY_BIAS = {"tensorSuffix": "attn.c_attn.bias", "from": EMBD, "to": 2 * EMBD,
            "why": "a key bias shifts all scores of a query row equally: softmax ignores it"}
# The reward model's final LayerNorm bias adds v_head . bias to every token's score, and the pairwise loss depends on
# score differences only: its gradient is 0 in exact arithmetic in the reward-model step.
LN_F_BIAS = {"tensorSuffix": "ln_f.bias", "from": 0, "to": EMBD,
             "why": "adds the same constant to every score; the pairwise loss sees differences only"}


def run_sft(actor, gen, updated):
    """DS-Chat step 1 on prompt + answer + eos rows, right-padded with pad (= eos), labels -100 on the padding."""
    lengths, t = [9, 6, 12], 12
    ids, mask = [], []
    for n in lengths:
        ids.append(ids_row(gen, n - 1) + [EOS] + [PAD] * (t - n))
        mask.append([1] * n + [0] * (t - n))
    ids, mask = torch.tensor(ids), torch.tensor(mask)
    labels = torch.where(mask.bool(), ids, -100)
    model = DeepSpeedEngineLike(actor, SFT_LR, WEIGHT_DECAY, MAX_GRAD_NORM)
    model.train()
    outputs = model(input_ids=ids, attention_mask=mask, use_cache=False)  # step1 main.py: model(**batch, use_cache=False)
    loss = causal_lm_loss(outputs.logits, labels, VOCAB)  # rlhf4j: outputs.loss, in float64
    model.backward(loss)
    model.step()
    updated.update(snapshot("sft.", dict(actor.named_parameters())))
    print(f"sft: loss {loss.item():.6f} grad norm {model.grad_norms[-1]:.4f}")
    return {"lr": SFT_LR, "zeroGradient": exactly_zero_gradients("sft", model, [KEY_BIAS]), "inputIds": enc(ids), "attentionMask": enc(mask), "labels": enc(labels),
            "loss": loss.item(), "gradNorm": model.grad_norms[-1]}


def run_reward(reward, gen, updated):
    """DS-Chat step 2 on [chosen; rejected] rows ending in eos, right-padded with pad (= eos)."""
    t = 10
    prompt = [ids_row(gen, 4), ids_row(gen, 3), ids_row(gen, 5)]
    chosen_answers = [ids_row(gen, 4), ids_row(gen, 2), ids_row(gen, 3)]
    rejected_answers = [ids_row(gen, 2), ids_row(gen, 6), ids_row(gen, 3)]  # shorter, longer (fills the row), same

    def row(p, a):
        r = p + a + [EOS]
        r = r[:t]
        return r + [PAD] * (t - len(r)), [1] * len(r) + [0] * (t - len(r))

    rows = [row(p, a) for p, a in zip(prompt, chosen_answers)] + [row(p, a) for p, a in zip(prompt, rejected_answers)]
    ids, mask = torch.tensor([r for r, _ in rows]), torch.tensor([m for _, m in rows])
    model = DeepSpeedEngineLike(reward, REWARD_LR, WEIGHT_DECAY, MAX_GRAD_NORM)
    model.train()
    outputs = model(input_ids=ids, attention_mask=mask, use_cache=False)  # step2 main.py
    loss = outputs["loss"]
    model.backward(loss)
    model.step()
    updated.update(snapshot("reward.", rlhf4j_reward_names(dict(reward.named_parameters()))))
    print(f"reward: loss {loss.item():.6f} grad norm {model.grad_norms[-1]:.4f} "
          f"chosen {flat(outputs['chosen_mean_scores'])} rejected {flat(outputs['rejected_mean_scores'])}")
    return {"lr": REWARD_LR, "zeroGradient": exactly_zero_gradients("reward", model, [KEY_BIAS, LN_F_BIAS]),
            "pairs": len(prompt), "inputIds": enc(ids), "attentionMask": enc(mask),
            "loss": loss.item(), "gradNorm": model.grad_norms[-1],
            "chosenEndScores": enc(outputs["chosen_mean_scores"]),
            "rejectedEndScores": enc(outputs["rejected_mean_scores"])}


def main():
    models = make_models()
    tokenizer = models[-1]
    probe = DTYPE != torch.float64
    if not probe:
        shutil.rmtree(OUT, ignore_errors=True)
        os.makedirs(OUT)
        save_causal_lm(models[0], "actor")
        save_causal_lm(models[1], "reference")
        save_reward_model(models[2], "critic")
        save_reward_model(models[3], "reward")

    def fresh():
        """The four initial models in DTYPE, each run starting from them."""
        return [copy.deepcopy(m).to(DTYPE) for m in models[:4]]

    gen = torch.Generator().manual_seed(2024)
    updated = {}
    seq = ppo_seq(gen)
    ppo = run_ppo(*fresh(), tokenizer, seq, updated)
    ppo_positions = run_ppo(*fresh(), tokenizer, seq, None, positions_from_mask=True)
    actor, _, _, reward = fresh()
    sft = run_sft(actor, gen, updated)
    rm = run_reward(reward, gen, updated)
    if probe:
        torch.save(updated, "/tmp/ppo_step_probe_f32.pt")
        print("float32 probe: weights in /tmp/ppo_step_probe_f32.pt, nothing written to the fixture")
        return

    safetensors.torch.save_file(updated, os.path.join(OUT, "updated.safetensors"), metadata={"format": "pt"})
    out = {"generator": "src/test/python/make_ppo_step_fixture.py", "torch": torch.__version__,
           "transformers": transformers.__version__, "python": sys.version.split()[0],
           "padId": PAD, "eosId": EOS, "weightDecay": WEIGHT_DECAY, "maxGradNorm": MAX_GRAD_NORM,
           "betas": [0.9, 0.95], "eps": 1e-8,
           "ppo": ppo, "ppoPositionsFromMask": ppo_positions, "sft": sft, "reward": rm}
    with open(os.path.join(OUT, "expected.json.tmp"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
    os.replace(os.path.join(OUT, "expected.json.tmp"), os.path.join(OUT, "expected.json"))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {os.path.normpath(OUT)} ({total} bytes) with torch {torch.__version__}, "
          f"transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
