"""Tokenizer training, BERT pretraining and the one training loop.

Import the submodules directly (`from corpus.train.pretrain import pretrain`): they pull in torch and
transformers, which the rest of the toolkit must not pay for at import time.
"""
