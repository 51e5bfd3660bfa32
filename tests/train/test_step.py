"""The one loop and the one step that every training runs."""

from __future__ import annotations

import torch
from torch import nn

from kfree.train.step import Batch, optimisation_step, train_steps


class _Sq(nn.Module):
    def forward(self, emb, target, *, scale=1.0):
        return scale * ((emb - target) ** 2).mean()


def test_the_loop_steps_on_every_batch_and_stops_when_told():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, target = torch.randn(8, 3), torch.zeros(8, 2)
    seen = []
    model.eval()
    n = train_steps(model, _Sq(), opt, (Batch(x, (target,), {"scale": 2.0}) for _ in range(10)),
                    on_step=lambda i, v: seen.append((i, v)) or i == 4)
    assert n == 4 and [i for i, _ in seen] == [1, 2, 3, 4] and model.training
    assert seen[-1][1] < seen[0][1]  # it trained: the loss went down


def test_a_step_equals_the_hand_written_one():
    torch.manual_seed(1)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    oa, ob = torch.optim.Adam(a.parameters(), lr=0.01), torch.optim.Adam(b.parameters(), lr=0.01)
    x, t = torch.randn(5, 3), torch.randn(5, 2)
    v = optimisation_step(a, _Sq(), x, oa, t)
    value = _Sq()(b(x), t)
    ob.zero_grad()
    value.backward()
    ob.step()
    assert v == float(value.detach())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
