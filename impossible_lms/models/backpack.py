"""Backpack-GPT2 (Hewitt et al. 2023): outputs are α-weighted sums of per-word sense vectors.

senses_k(x) comes from the word alone (no positions); α_k comes from a GPT-2
over the sequence. Σ_j α_k[t, j] · sense_k(x_j) is exactly attention with the
senses as values, so the default path never materialises α (one fused kernel
per sense head); ``output_contextualization=True`` takes the explicit path.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers import GenerationMixin

from impossible_lms.errors import ILMError
from impossible_lms.models.attention import AttnMask, attend, key_padding
from impossible_lms.models.config import BackpackConfig
from impossible_lms.models.gpt2 import MLP, ILMOutput, ILMPreTrainedModel, Transformer, lm_loss


class SenseBlock(nn.Module):
    """The MLP-only residual block of the reference sense network (its ``BackpackNoMixBlock``)."""

    def __init__(self, cfg: BackpackConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg, cfg.n_embd, 4 * cfg.n_embd, cfg.n_embd)
        self.resid_dropout1 = nn.Dropout(cfg.resid_pdrop)
        self.resid_dropout2 = nn.Dropout(cfg.resid_pdrop)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        residual = self.resid_dropout1(h) + residual
        residual = self.resid_dropout2(self.mlp(self.ln_1(residual))) + residual
        return self.ln_2(residual)


class SenseNetwork(nn.Module):
    """embedding → dropout → LayerNorm → residual MLP block → MLP d → 4d → k·d."""

    def __init__(self, cfg: BackpackConfig):
        super().__init__()
        self.k, self.d = cfg.num_senses, cfg.n_embd
        self.dropout = nn.Dropout(cfg.embd_pdrop)
        self.ln = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.block = SenseBlock(cfg)
        self.final_mlp = MLP(cfg, cfg.n_embd, cfg.sense_intermediate_scale * cfg.n_embd, cfg.num_senses * cfg.n_embd)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        residual = self.dropout(embeds)
        senses = self.final_mlp(self.block(self.ln(residual), residual))
        return senses.unflatten(-1, (self.k, self.d))  # [..., k, d]


class SenseWeightNet(nn.Module):
    """Hidden states → per-sense queries and keys (one Linear d → 2d, k heads of d/k)."""

    def __init__(self, cfg: BackpackConfig):
        super().__init__()
        self.k = cfg.num_senses
        self.c_attn = nn.Linear(cfg.n_embd, 2 * cfg.n_embd)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = h.shape
        q, k = self.c_attn(h).view(B, T, 2, self.k, -1).unbind(dim=2)
        return q.transpose(1, 2), k.transpose(1, 2)  # [B, k, T, d/k]


class BackpackForCausalLM(ILMPreTrainedModel, GenerationMixin):
    config_class = BackpackConfig

    def __init__(self, config: BackpackConfig):
        super().__init__(config)
        self.transformer = Transformer(config)
        self.sense_network = SenseNetwork(config)
        self.sense_weight_net = SenseWeightNet(config)
        # token id → replacement sense vectors [k, d]; an intervention, not saved with the weights
        self.sense_edits: dict[int, torch.Tensor] = {}
        self.post_init()

    # ---------------------------------------------------------- pieces

    def senses(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Sense vectors [*, k, d] of each token, with any edits applied."""
        senses = self.sense_network(self.transformer.wte(input_ids))
        for token, vectors in self.sense_edits.items():
            hit = (input_ids == token)[..., None, None]
            senses = torch.where(hit, vectors.to(senses), senses)
        return senses

    def contextualization(self, input_ids, attention_mask=None, document_ids=None) -> torch.Tensor:
        """α [B, k, T, T]: causal softmax per sense head over the GPT-2's hidden states."""
        q, k, mask = self._queries_keys(input_ids, attention_mask, document_ids)
        scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
        return torch.softmax(scores + mask.bias(q.device, torch.float32), dim=-1)

    def _queries_keys(self, input_ids, attention_mask, document_ids):
        h, _ = self.transformer(input_ids, attention_mask, document_ids)
        q, k = self.sense_weight_net(h)
        T = input_ids.shape[1]
        return q, k, AttnMask(T, T, key_padding=key_padding(attention_mask), document_ids=document_ids)

    def mix(self, senses: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Σ_k α_k · senses_k: [B, T, k, d] × [B, k, T, T] → [B, T, d]."""
        return torch.einsum("bkts,bskd->btd", alpha.to(senses.dtype), senses)

    # ---------------------------------------------------------- forward

    def forward(self, input_ids, attention_mask=None, labels=None, document_ids=None,
                output_contextualization=False, use_cache=False, return_logits=True, **kwargs) -> ILMOutput:
        """``return_logits=False`` (with labels; what training asks): the loss without the logits (loss.py)."""
        if not return_logits and labels is None:
            raise ValueError("return_logits=False leaves nothing to return without labels")
        senses = self.senses(input_ids)  # [B, T, k, d]
        alpha = None
        if output_contextualization:
            alpha = self.contextualization(input_ids, attention_mask, document_ids)
            hidden = self.mix(senses, alpha)
        else:
            q, k, mask = self._queries_keys(input_ids, attention_mask, document_ids)
            # flash-attn needs equal q/v head sizes; senses are d wide, keys d/k
            backend = "sdpa" if self.config.attention in ("auto", "flash_attn") and q.is_cuda else (
                "math" if self.config.attention in ("auto", "flash_attn") else self.config.attention)
            v = senses.transpose(1, 2)  # [B, k, T, d]
            hidden = attend(backend, q, k, v, mask, q.shape[-1] ** -0.5).sum(dim=1)
        if not return_logits:
            return ILMOutput(loss=self.head_loss(hidden, labels, attention_mask), contextualization=alpha)
        out = ILMOutput(logits=self.output_logits(hidden), contextualization=alpha)
        if labels is not None:
            out.loss = lm_loss(out.logits, labels, attention_mask)
        return out

    def run_with_contextualization(self, input_ids: torch.Tensor, alpha: torch.Tensor) -> ILMOutput:
        """Logits when α [B, k, T, T] is given instead of computed (steering by hand)."""
        B, T = input_ids.shape
        if alpha.shape != (B, self.config.num_senses, T, T):
            raise ILMError(f"contextualization must have shape {(B, self.config.num_senses, T, T)}, "
                           f"got {tuple(alpha.shape)}")
        return ILMOutput(logits=self.output_logits(self.mix(self.senses(input_ids), alpha)), contextualization=alpha)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask}  # no KV cache for Backpacks

    # ---------------------------------------------------------- sense APIs

    @torch.no_grad()
    def sense_vectors(self, token_id: int) -> torch.Tensor:
        """The [k, d] sense vectors of one token (edits applied, no dropout)."""
        self._check_token(token_id)
        was = self.training
        self.eval()
        try:
            return self.senses(torch.tensor([token_id], device=self.device))[0]
        finally:
            self.train(was)

    @torch.no_grad()
    def sense_top_tokens(self, token_id: int, top: int = 10, bottom: bool = False) -> list[list[int]]:
        """Per sense, the token ids whose output embeddings score highest (lowest) against it."""
        scores = self.output_logits(self.sense_vectors(token_id).float().to(self.dtype))  # [k, V]
        return scores.topk(top, dim=-1, largest=not bottom).indices.tolist()

    def set_sense_vectors(self, token_id: int, vectors: torch.Tensor) -> None:
        """Replace a token's [k, d] sense vectors wherever it occurs."""
        self._check_token(token_id)
        k, d = self.config.num_senses, self.config.n_embd
        if tuple(vectors.shape) != (k, d):
            raise ILMError(f"sense vectors must have shape {(k, d)}, got {tuple(vectors.shape)}")
        self.sense_edits[token_id] = vectors.detach().clone()

    def scale_senses(self, token_id: int, scales: float | list[float] | torch.Tensor) -> None:
        """Multiply a token's sense vectors (one factor, or one per sense); 0 removes a sense."""
        s = torch.as_tensor(scales, dtype=torch.float32, device=self.device)
        if s.ndim == 0:
            s = s.expand(self.config.num_senses)
        if s.shape != (self.config.num_senses,):
            raise ILMError(f"need 1 or {self.config.num_senses} scales, got {s.numel()}")
        self.sense_edits.pop(token_id, None)
        vectors = self.sense_vectors(token_id)
        self.set_sense_vectors(token_id, vectors * s[:, None].to(vectors.dtype))

    def clear_sense_edits(self) -> None:
        self.sense_edits.clear()

    def _check_token(self, token_id: int) -> None:
        if not 0 <= token_id < self.config.vocab_size:
            raise ILMError(f"token id {token_id} outside the vocabulary (0..{self.config.vocab_size - 1})")
