"""Stage 8: the distilled reward model, trained on pairs AND labelled points by OpenRLHF's own train_rm with our
trainer class (:mod:`.trainer`) swapped in; :mod:`.train` is the entry point, :mod:`.data` checks the inputs,
:mod:`.eval_rm` measures a trained RM on held-out data (``eval-rm``), with :mod:`.scorer`, which ``serve-rm``
also scores with."""
