"""Being written."""


def param_groups(*args, **kwargs):
    raise NotImplementedError("models.optim is being written")
