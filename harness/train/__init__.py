"""Stage 4, training. Takes a spec, a variant and a run request; gives a trained model, its history and
its test figures, written as one record (results/record.py). request.py resolves the request (budget,
identity, data, device); loop.py is the run (`run`, `fit`, `train_one_epoch`, `select_and_test`); step.py
is what happens to one batch and how a model is scored; optim.py, checkpoint.py and teacher.py serve them."""
