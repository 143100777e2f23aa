"""The Backpack-GPT2 config (Hewitt et al. 2023): GPT-2's fields plus the sense network's.

Written beside the weights by ``ilm export``; see modeling_backpack_gpt2.py.
"""

from transformers import GPT2Config


class BackpackGPT2Config(GPT2Config):
    model_type = "backpack-gpt2"
    num_senses: int = 16  # sense vectors per word
    sense_intermediate_scale: int = 4  # the sense MLP's hidden size, in multiples of n_embd
