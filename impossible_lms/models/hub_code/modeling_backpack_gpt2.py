"""Backpack-GPT2 (Hewitt et al. 2023) in the layout of stanfordnlp/backpack-gpt2.

Written beside the weights by ``ilm export`` so that the folder loads with
transformers alone:

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

Each word has k sense vectors, made from its embedding alone; a GPT-2 over the
sequence gives, per sense, causal weights α_k (one query/key projection d → 2d,
k heads of d/k). The output at t is Σ_k Σ_{j≤t} α_k[t, j] · sense_k(x_j); the
logits are that times the input embedding (tied), with no final LayerNorm.
Weights: ``backpack.gpt2_model.*`` (GPT-2), ``backpack.sense_network.*``,
``backpack.sense_weight_net.c_attn.*``.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Model, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import CausalLMOutput
from transformers.pytorch_utils import Conv1D

from .configuration_backpack_gpt2 import BackpackGPT2Config


class BackpackMLP(nn.Module):
    def __init__(self, d_in, d_hidden, d_out, config):
        super().__init__()
        self.c_fc = Conv1D(d_hidden, d_in)
        self.c_proj = Conv1D(d_out, d_hidden)
        self.act = ACT2FN[config.activation_function]
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class BackpackNoMixBlock(nn.Module):
    """A transformer block with the MLP only: each word on its own."""

    def __init__(self, config):
        super().__init__()
        d = config.n_embd
        self.ln_1 = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.ln_2 = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.mlp = BackpackMLP(d, 4 * d, d, config)
        self.resid_dropout1 = nn.Dropout(config.resid_pdrop)
        self.resid_dropout2 = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden, residual):
        residual = self.resid_dropout1(hidden) + residual
        residual = self.resid_dropout2(self.mlp(self.ln_1(residual))) + residual
        return self.ln_2(residual)


class BackpackSenseNetwork(nn.Module):
    """embedding → dropout → LayerNorm → MLP block → MLP d → scale·d → k·d, read as k senses."""

    def __init__(self, config):
        super().__init__()
        d, self.k = config.n_embd, config.num_senses
        self.dropout = nn.Dropout(config.embd_pdrop)
        self.ln = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.block = BackpackNoMixBlock(config)
        self.final_mlp = BackpackMLP(d, config.sense_intermediate_scale * d, self.k * d, config)

    def forward(self, embeddings):
        residual = self.dropout(embeddings)
        senses = self.final_mlp(self.block(self.ln(residual), residual))
        return senses.unflatten(-1, (self.k, -1))  # [B, T, k, d]


class BackpackWeightNetwork(nn.Module):
    """GPT-2 hidden states → α [B, k, T, T], a causal softmax per sense."""

    def __init__(self, config):
        super().__init__()
        self.k = config.num_senses
        self.c_attn = nn.Linear(config.n_embd, 2 * config.n_embd)

    def forward(self, hidden, attention_mask=None):
        B, T, _ = hidden.shape
        q, k = self.c_attn(hidden).view(B, T, 2, self.k, -1).unbind(dim=2)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # [B, k, T, d/k]
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        future = torch.ones(T, T, dtype=torch.bool, device=hidden.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        if attention_mask is not None:  # padding keys take no weight
            scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, float("-inf"))
        return scores.softmax(dim=-1)


class BackpackGPT2Model(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.gpt2_model = GPT2Model(config)
        self.sense_network = BackpackSenseNetwork(config)
        self.sense_weight_net = BackpackWeightNetwork(config)

    def forward(self, input_ids, attention_mask=None):
        senses = self.sense_network(self.gpt2_model.wte(input_ids))  # [B, T, k, d]
        hidden = self.gpt2_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        alpha = self.sense_weight_net(hidden, attention_mask)  # [B, k, T, T]
        return torch.einsum("bkts,bskd->btd", alpha.to(senses.dtype), senses), alpha


class BackpackGPT2LMHeadModel(PreTrainedModel):
    config_class = BackpackGPT2Config
    base_model_prefix = "backpack"

    def __init__(self, config):
        super().__init__(config)
        self.backpack = BackpackGPT2Model(config)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, Conv1D, nn.Embedding)):
            module.weight.data.normal_(0.0, self.config.initializer_range)
            if getattr(module, "bias", None) is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def get_input_embeddings(self):
        return self.backpack.gpt2_model.wte

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        hidden, _ = self.backpack(input_ids, attention_mask)
        logits = F.linear(hidden, self.backpack.gpt2_model.wte.weight)  # tied, no final LayerNorm
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)
