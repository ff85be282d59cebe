#!/usr/bin/env python3
"""Makes src/test/resources/fixtures/rlhf_math.json: what DeepSpeed-Chat's own PPO and reward-model math computes, in
float64, on seeded random inputs of a realistic shape (B = 3 sequences of T = 12 tokens, left-padded prompts, answers
of different lengths, one that fills the sequence), for rlhf4j's io.github.rlhf4j.rlhf package (PpoMath, RewardLoss).

The DeepSpeed-Chat functions below are copied VERBATIM from DeepSpeedExamples (Apache-2.0, Copyright (c) Microsoft
Corporation), commit 83757d9c937daabd1089a08051061706cb73900d:
  applications/DeepSpeed-Chat/dschat/rlhf/ppo_trainer.py          gather_log_probs, DeepSpeedPPOTrainer.__init__
                                                                  constants, compute_rewards, train_rlhf (its no-grad
                                                                  part and the loss calls), actor_loss_fn,
                                                                  critic_loss_fn, get_advantages_and_returns
  applications/DeepSpeed-Chat/dschat/utils/model/reward_model.py  RewardModel.forward and forward_value, from the point
                                                                  where the per-token scores exist
Only the model calls are replaced (by the tensors they would return); every such line is marked "# rlhf4j:".

Sections:
  ppo      per case: seq, prompt length, pad id, the actor / reference / new-actor logits, the reward score, the critic
           values (old and new); DS-Chat's logprobs, ref_logprobs, rewards (after train_rlhf zeroes them), the zeroed
           old values, advantages, returns, actor loss, critic loss; torch.autograd gradients of the actor loss with
           respect to the new actor's logits and logprobs, and of the critic loss with respect to the new values; and a
           KL figure (DS-Chat logs none: this script's definition, see kl_stats).
  reward   per case: ids [2B, T] (chosen rows first), pad id, num_padding_at_beginning, scores [2B, T]; DS-Chat's loss,
           chosen/rejected end scores, and the gradient of the loss with respect to the scores.
  value    forward_value(prompt_length): ids, scores, prompt length, pad id -> chosen_end_scores.

Regenerate with:  /work/.venv-ref/bin/python src/test/python/make_rlhf_math_fixtures.py
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "resources", "fixtures", "rlhf_math.json")
DSCHAT_COMMIT = "83757d9c937daabd1089a08051061706cb73900d"


# ==== verbatim from dschat/rlhf/ppo_trainer.py ======================================================================
def gather_log_probs(logits, labels):
    log_probs = F.log_softmax(logits, dim=-1)
    log_probs_labels = log_probs.gather(dim=-1, index=labels.unsqueeze(-1))
    return log_probs_labels.squeeze(-1)


class DeepSpeedPPOTrainerMath():
    """DeepSpeedPPOTrainer without the models: its constants and its math methods, verbatim."""

    def __init__(self):
        # rlhf4j: from DeepSpeedPPOTrainer.__init__ (args.compute_fp32_loss is False by default)
        self.compute_fp32_loss = False

        # Those value can be changed
        self.kl_ctl = 0.1
        self.clip_reward_value = 5
        self.cliprange = 0.2
        self.cliprange_value = 0.2
        self.gamma = 1.0
        self.lam = 0.95

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

    def train_rlhf(self, inputs, actor_prob, value):  # rlhf4j: the two model outputs come in as arguments
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
        # rlhf4j: actor_prob = self.actor_model(**batch, use_cache=False).logits
        actor_log_prob = gather_log_probs(actor_prob[:, :-1, :], seq[:, 1:])
        actor_log_prob.retain_grad()  # rlhf4j: to record the gradient with respect to the logprobs too
        actor_loss = self.actor_loss_fn(actor_log_prob[:, start:],
                                        log_probs[:, start:], advantages,
                                        action_mask[:, start:])
        # rlhf4j: self.actor_model.backward(actor_loss)
        actor_loss.backward()

        # rlhf4j: value = self.critic_model.forward_value(**batch, return_value_only=True, use_cache=False)[:, :-1]
        value = value[:, :-1]
        critic_loss = self.critic_loss_fn(value[:, start:], old_values[:,
                                                                       start:],
                                          returns, action_mask[:, start:])
        # rlhf4j: self.critic_model.backward(critic_loss)
        critic_loss.backward()

        # rlhf4j: the intermediate results, for the fixture
        return dict(old_rewards=old_rewards, old_values=old_values, advantages=advantages, returns=returns,
                    actor_log_prob=actor_log_prob, actor_loss=actor_loss, critic_loss=critic_loss, ends=ends)

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


# ==== verbatim from dschat/utils/model/reward_model.py ==============================================================
class RewardModelMath():
    """RewardModel.forward / forward_value from the per-token scores on (the transformer and v_head are the model)."""

    def __init__(self, pad_token_id, num_padding_at_beginning=0):
        self.num_padding_at_beginning = num_padding_at_beginning
        self.PAD_ID = pad_token_id
        self.compute_fp32_loss = False

    def forward(self, input_ids, rewards):  # rlhf4j: rewards = self.v_head(hidden_states).squeeze(-1) comes in
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

    def forward_value(self, input_ids, values, prompt_length=0):  # rlhf4j: values = v_head(...) comes in
        if True:  # rlhf4j: the return_value_only=False branch
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


# ==== the fixture ====================================================================================================
gen = torch.Generator().manual_seed(20250611)


def enc(t):
    if t.dtype in (torch.int64, torch.int32, torch.bool):
        return {"shape": list(t.shape), "dtype": "i32", "data": [int(v) for v in t.flatten().tolist()]}
    return {"shape": list(t.shape), "dtype": "f64", "data": [float(v) for v in t.detach().flatten().tolist()]}


def tokens(n, vocab, pad):
    """n random ids in [0, vocab) other than pad."""
    out = torch.randint(0, vocab - 1, (n,), generator=gen)
    return out + (out >= pad).long()


def build_seq(prompt_lens, answer_lens, P, T, vocab, pad):
    """Prompts left-padded to P (DS-Chat's DataCollatorRLHF), answers right-padded to T - P (generate's padding)."""
    rows = []
    for p, a in zip(prompt_lens, answer_lens):
        row = torch.full((T,), pad, dtype=torch.long)
        row[P - p:P] = tokens(p, vocab, pad)
        row[P:P + a] = tokens(a, vocab, pad)
        rows.append(row)
    return torch.stack(rows)


def kl_stats(logprobs, ref_logprobs, action_mask, start):
    """DS-Chat logs no KL; rlhf4j logs the k1 estimate log pi - log ref over the answer's actions, as the mean per token
    and the mean over sequences of the per-sequence sum. Computed here from its definition, independently of Java."""
    d = (logprobs - ref_logprobs)[:, start:] * action_mask[:, start:]
    return {"perToken": float(d.sum() / action_mask[:, start:].sum()), "perSequence": float(d.sum(1).mean())}


def ppo_case(name, prompt_lens, answer_lens, P, T, vocab, pad, reward_score):
    while True:
        seq = build_seq(prompt_lens, answer_lens, P, T, vocab, pad)
        B = seq.shape[0]
        logits = torch.randn(B, T, vocab, generator=gen)
        logits_ref = logits + 0.5 * torch.randn(B, T, vocab, generator=gen)  # a reference that differs from the actor
        actor_logits = logits + 0.6 * torch.randn(B, T, vocab, generator=gen)  # the actor after some updates
        values_full = torch.randn(B, T, generator=gen)
        new_values_full = values_full + 0.3 * torch.randn(B, T, generator=gen)
        attention_mask = seq.not_equal(pad).long()

        # generate_experience's no-grad part (rlhf4j: the model outputs are the logits and values above)
        exp = {
            'prompts': seq[:, :P],
            'logprobs': gather_log_probs(logits[:, :-1, :], seq[:, 1:]),
            'ref_logprobs': gather_log_probs(logits_ref[:, :-1, :], seq[:, 1:]),
            'value': values_full.clone()[:, :-1],
            'rewards': reward_score.clone(),
            'input_ids': seq,
            "attention_mask": attention_mask
        }
        old_values_in = exp['value'].clone()
        actor_prob = actor_logits.clone().requires_grad_(True)
        value = new_values_full.clone().requires_grad_(True)
        # Keep every ratio and new value clear of the clip bounds (kinks): finite differences and a tie in torch.max
        # would otherwise depend on rounding.
        start = P - 1
        with torch.no_grad():
            am = attention_mask[:, 1:][:, start:].bool()
            lp = gather_log_probs(actor_logits[:, :-1, :], seq[:, 1:])[:, start:]
            ratio = torch.exp(lp - exp['logprobs'][:, start:])[am]
            dv = (new_values_full[:, :-1] - values_full[:, :-1])[:, start:][am]
        if (ratio - 0.8).abs().min() > 1e-3 and (ratio - 1.2).abs().min() > 1e-3 and \
                (dv.abs() - 0.2).abs().min() > 1e-3:
            break

    trainer = DeepSpeedPPOTrainerMath()
    out = trainer.train_rlhf(exp, actor_prob, value)
    clipped = {"ratioAbove": int((ratio > 1.2).sum()), "ratioBelow": int((ratio < 0.8).sum()),
               "valueAbove": int((dv > 0.2).sum()), "valueBelow": int((dv < -0.2).sum())}
    print(f"ppo {name}: ends {out['ends'].tolist()}, clipped {clipped}")
    return {
        "name": name,
        "promptLength": P, "padId": pad, "start": start,
        "klCtl": trainer.kl_ctl, "clipRewardValue": trainer.clip_reward_value, "cliprange": trainer.cliprange,
        "cliprangeValue": trainer.cliprange_value, "gamma": trainer.gamma, "lam": trainer.lam,
        "clippedCounts": clipped,
        "seq": enc(seq), "attentionMask": enc(attention_mask),
        "logits": enc(logits), "refLogits": enc(logits_ref), "actorLogits": enc(actor_logits),
        "rewardScore": enc(reward_score), "values": enc(old_values_in), "newValuesFull": enc(new_values_full),
        "logprobs": enc(exp['logprobs']), "refLogprobs": enc(exp['ref_logprobs']),
        "ends": enc(out['ends']),
        "rewards": enc(out['old_rewards']), "oldValues": enc(out['old_values']),
        "advantages": enc(out['advantages']), "returns": enc(out['returns']),
        "actorLogprobs": enc(out['actor_log_prob']),
        "actorLoss": out['actor_loss'].item(), "criticLoss": out['critic_loss'].item(),
        "actorLossGradLogits": enc(actor_prob.grad), "actorLossGradLogprobs": enc(out['actor_log_prob'].grad),
        "criticLossGradValuesFull": enc(value.grad),
        "kl": kl_stats(exp['logprobs'], exp['ref_logprobs'], attention_mask[:, 1:].double(), start),
    }


def reward_case(name, chosen, rejected, pad, num_padding_at_beginning):
    ids = torch.tensor(chosen + rejected, dtype=torch.long)
    scores = torch.randn(ids.shape, generator=gen).requires_grad_(True)
    rm = RewardModelMath(pad, num_padding_at_beginning)
    out = rm.forward(ids, scores)
    out["loss"].backward()
    print(f"reward {name}: loss {out['loss'].item():.6f}")
    return {"name": name, "padId": pad, "numPaddingAtBeginning": num_padding_at_beginning,
            "ids": enc(ids), "scores": enc(scores), "loss": out["loss"].item(),
            "chosenEndScores": enc(out["chosen_mean_scores"]), "rejectedEndScores": enc(out["rejected_mean_scores"]),
            "lossGradScores": enc(scores.grad)}


def value_case(name, rows, pad, prompt_length):
    ids = torch.tensor(rows, dtype=torch.long)
    scores = torch.randn(ids.shape, generator=gen)
    out = RewardModelMath(pad).forward_value(ids, scores, prompt_length=prompt_length)
    return {"name": name, "padId": pad, "promptLength": prompt_length, "ids": enc(ids), "scores": enc(scores),
            "chosenEndScores": enc(out["chosen_end_scores"])}


ppo = [
    # answers of 7 (fills the sequence: ends = T, past the last action), 3 and 5 tokens; scores above +5, below -5
    # and inside
    ppo_case("P5_answers7_3_5", [5, 3, 4], [7, 3, 5], P=5, T=12, vocab=11, pad=1,
             reward_score=torch.tensor([7.3, -6.1, 1.7])),
    ppo_case("P4_answers2_8_6", [2, 4, 1], [2, 8, 6], P=4, T=12, vocab=9, pad=0,
             reward_score=torch.randn(3, generator=gen) * 4),
]

PAD = 0
reward = [
    # GPT-2 style (num_padding_at_beginning 0), T = 12:
    reward_case("pad0", [
        [5, 6, 7, 8, 9, 3, 4, 2, 0, 0, 0, 0],   # chosen longer than rejected, diverges at 5
        [5, 6, 7, 8, 9, 3, 0, 0, 0, 0, 0, 0],   # identical rows: only the last position counts
        [5, 6, 7, 2, 0, 0, 0, 0, 0, 0, 0, 0],   # chosen shorter; rejected has no padding at all (r_ind = T)
        [0, 0, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0],   # identical, left-padded: c_ind = r_ind = 0, end scores at index -1
        [5, 6, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0],   # the pad id inside the text ends the row there (c_ind = 2)
    ], [
        [5, 6, 7, 8, 9, 4, 0, 0, 0, 0, 0, 0],
        [5, 6, 7, 8, 9, 3, 0, 0, 0, 0, 0, 0],
        [5, 6, 7, 3, 3, 4, 4, 8, 9, 2, 3, 4],
        [0, 0, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0],
        [5, 6, 7, 7, 8, 9, 0, 0, 0, 0, 0, 0],
    ], PAD, 0),
    # OPT style: every row starts with the pad id, num_padding_at_beginning = 1 skips it
    reward_case("opt_pad1", [
        [1, 5, 6, 7, 8, 9, 1, 1, 1, 1, 1, 1],
        [1, 5, 6, 7, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 5, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7],   # no second pad: c_ind = T
    ], [
        [1, 5, 6, 7, 3, 1, 1, 1, 1, 1, 1, 1],
        [1, 5, 6, 7, 1, 1, 1, 1, 1, 1, 1, 1],   # identical
        [1, 5, 6, 7, 8, 4, 1, 1, 1, 1, 1, 1],
    ], 1, 1),
]

value = [
    value_case("P5", [
        [1, 1, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4],   # answer fills the row: no pad after the prompt, index T-1
        [1, 3, 4, 5, 6, 7, 8, 1, 1, 1, 1, 1],   # 2-token answer: index 6
        [3, 4, 5, 6, 7, 1, 1, 1, 1, 1, 1, 1],   # empty answer: index P-1, the prompt's last token
    ], 1, 5),
]

with open(OUT + ".tmp", "w") as f:
    json.dump({"generator": "src/test/python/make_rlhf_math_fixtures.py", "torch": torch.__version__,
               "python": sys.version.split()[0], "dschatCommit": DSCHAT_COMMIT,
               "ppo": ppo, "reward": reward, "value": value}, f, separators=(",", ":"))
os.replace(OUT + ".tmp", OUT)
print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes) with torch {torch.__version__}")
