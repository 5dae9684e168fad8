"""rnnbook.gru, chapter 10: GRURegressor. StackedGRUScratch is checked with the other
scratch stacks in test_recurrent.py."""

import pytest
import torch

from rnnbook.gru import GRURegressor


def test_gru_regressor_reads_out_the_last_step_batch_first():
    torch.manual_seed(0)
    model = GRURegressor(3, 5, output_size=2, num_layers=2)
    x = torch.randn(4, 6, 3)  # (B, T, I)
    output, h_n = model.gru(x)
    torch.testing.assert_close(model(x), model.head(h_n[-1]))
    assert model(x).shape == (4, 2)
    # the read-out sees the whole sequence: changing the first step changes the prediction
    changed = x.clone()
    changed[:, 0] += 1.0
    assert not torch.allclose(model(changed), model(x))


def test_gru_regressor_refuses_bad_inputs():
    model = GRURegressor(3, 5)
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        model(torch.randn(4, 6, 2))
    with pytest.raises(ValueError, match="T >= 1"):
        model(torch.randn(4, 0, 3))
    with pytest.raises(ValueError, match="positive"):
        GRURegressor(3, 0)
