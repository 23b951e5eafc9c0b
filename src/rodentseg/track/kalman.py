"""Constant-velocity Kalman filter for one animal's centroid.

State ``[x, y, vx, vy]`` in pixels and pixels per frame; measurements are centroids ``(x, y)``
in pixels. Process noise is the discretised continuous white-noise acceleration model
(Bar-Shalom, Li and Kirubarajan 2001, "Estimation with Applications to Tracking and
Navigation", section 6.2.2), so the time step may vary (frames with no masks in between).
The same filter drives SORT's box tracks (Bewley et al. 2016); here it tracks centroids only.
"""

from __future__ import annotations

import numpy as np

_H = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])


class CentroidKalman:
    """Position and velocity of one centroid.

    Args:
        xy: (2,) first measured centroid (x, y) in pixels; velocity starts at 0.
        accel_std: standard deviation of the unmodelled acceleration, px/frame^2. Raising
            it lets the prediction follow sharp turns sooner but trusts the motion model less
            through occlusions.
        meas_std: standard deviation of a measured centroid, px.
        vel_std: initial velocity uncertainty, px/frame.
    """

    def __init__(self, xy: np.ndarray, accel_std: float = 1.0, meas_std: float = 2.0,
                 vel_std: float = 10.0):
        self.x = np.array([xy[0], xy[1], 0.0, 0.0])
        self.P = np.diag([meas_std**2, meas_std**2, vel_std**2, vel_std**2])
        self.q = accel_std**2
        self.r = meas_std**2

    @property
    def position(self) -> np.ndarray:
        """(2,) current (x, y) estimate, px."""
        return self.x[:2]

    @property
    def velocity(self) -> np.ndarray:
        """(2,) current (vx, vy) estimate, px/frame."""
        return self.x[2:]

    def predict(self, dt: float = 1.0) -> None:
        """Advance the state by ``dt`` frames (dt >= 0)."""
        if dt <= 0:
            return
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        g = self.q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        q = np.zeros((4, 4))
        q[np.ix_([0, 2], [0, 2])] = g
        q[np.ix_([1, 3], [1, 3])] = g
        self.x = f @ self.x
        self.P = f @ self.P @ f.T + q

    def update(self, z: np.ndarray, noise_scale: float = 1.0) -> None:
        """Correct the state with a measured centroid ``z`` (2,) px.

        ``noise_scale`` multiplies the measurement variance: large values (a centroid cut
        from a merged blob) move the state only a little.
        """
        s = self.P[:2, :2] + self.r * noise_scale * np.eye(2)
        k = self.P[:, :2] @ np.linalg.inv(s)
        self.x = self.x + k @ (np.asarray(z, float) - self.x[:2])
        self.P = (np.eye(4) - k @ _H) @ self.P

    def stop(self) -> None:
        """Set the velocity to zero (an animal lost for long is assumed to stay where it was)."""
        self.x[2:] = 0.0
