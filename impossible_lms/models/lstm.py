"""An LSTM language model: the recurrent baseline of this literature, under ilm's recipe.

Embedding → dropout → a stacked ``nn.LSTM`` → dropout → the tied embedding as
the output layer (Press & Wolf 2017; Zaremba et al. 2014's "medium" model is
two layers of 650 with dropout 0.5). It trains on the same packed stream with
the same loss (chunked from the hidden states, never the [B, T, V] logits),
schedule and checkpoints as the GPT-2 presets, and evaluates like them. It has
no blocks to hook, so interventions, probing and tree projections refuse it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedModel

from impossible_lms.models.config import LSTMConfig
from impossible_lms.models.gpt2 import ILMOutput, lm_loss
from impossible_lms.models.loss import head_cross_entropy


class LSTMForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = LSTMConfig
    base_model_prefix = "lstm"

    def __init__(self, config: LSTMConfig):
        super().__init__(config)
        d = config.n_embd
        self.embed = nn.Embedding(config.padded_vocab_size, d)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(d, d, config.n_layer, batch_first=True, dropout=config.dropout if config.n_layer > 1 else 0.0)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        r = self.config.initializer_range
        if isinstance(module, (nn.Embedding, nn.LSTM)):
            for p in module.parameters(recurse=False):
                p.uniform_(-r, r)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def hidden(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.drop(self.lstm(self.drop(self.embed(input_ids)))[0])

    def forward(self, input_ids, attention_mask=None, labels=None, return_logits=True, output_hidden_states=False,
                **kwargs) -> ILMOutput:
        """Right-padded batches need no mask: each position reads only the tokens before it."""
        h = self.hidden(input_ids)
        weight = self.embed.weight[: self.config.vocab_size]
        if not return_logits:
            if labels is None:
                raise ValueError("return_logits=False leaves nothing to return without labels")
            return ILMOutput(loss=head_cross_entropy(h, weight, labels, attention_mask, backend=self.config.cross_entropy))
        out = ILMOutput(logits=F.linear(h, weight), hidden_states=(h,) if output_hidden_states else None)
        if labels is not None:
            out.loss = lm_loss(out.logits, labels, attention_mask)
        return out

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        return {"input_ids": input_ids}  # no state carried between steps: each one reads the whole prefix
