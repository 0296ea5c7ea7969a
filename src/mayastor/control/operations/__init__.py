"""Operations of the core agent: each changes specs and io-engines, crash-consistently.

An operation on a volume first writes what it is about to do into the volume's spec
(`OperationRecord`, and Creating/Deleting), then takes its steps, then clears the
record. A core agent killed between two steps leaves the record behind, and
`settle_volume` (run by the reconciler, or by the next operation on that volume)
finishes the operation or undoes it, so specs and io-engines agree again.
"""
