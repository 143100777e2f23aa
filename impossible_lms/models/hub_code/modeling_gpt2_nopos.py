"""GPT-2 without position embeddings: the no-position models of Kallini et al. (2024).

Written beside the weights by ``ilm export`` (the impossible-language-models suite) so that the
folder loads with transformers alone:

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

The weights are keyed as Hugging Face GPT-2's, without ``transformer.wpe``: the
input to the first block is the token embedding alone. Everything else is
``GPT2LMHeadModel``, so generation, caching and attention backends are
transformers' own. The class names are the reference code's.
"""

import torch
from torch import nn
from transformers import GPT2LMHeadModel, GPT2Model


class NoPositions(nn.Module):
    """Stands where GPT-2's position table would be: adds nothing and holds no weights."""

    def forward(self, position_ids):
        # a 0-dim zero: added to the embeddings it keeps their dtype (fp16/bf16 included)
        return torch.zeros((), device=position_ids.device)


class GPT2NoPositionalEncodingModel(GPT2Model):
    def __init__(self, config):
        super().__init__(config)
        self.wpe = NoPositions()


class GPT2NoPositionalEncodingLMHeadModel(GPT2LMHeadModel):
    def __init__(self, config):
        super().__init__(config)
        self.transformer.wpe = NoPositions()
