"""train_tiny_gpt: a GPT-2-style decoder trained from scratch on CPU, on your text or a built-in corpus.

Importing this package loads only the argument and result models; torch and transformers load on a call.
"""
