"""What every stage shares: atomic files and metrics JSON, resumable checkpoints, fingerprints of consumed inputs,
progress bars, worker processes that die with their parent, the environment record, figures, and the files that
stages 03-05 hand each other.
"""
