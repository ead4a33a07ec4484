"""Imported by the fuzz harness's fork server: the compiled DES kernel is loaded once there, so that no case pays
for loading it (about 0.4 s from numba's cache) inside its clock, as a worker's pool processes do not."""

from simfleet.worker.des.engines import prepare

prepare("compiled")
