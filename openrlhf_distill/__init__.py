"""openrlhf-distill: "Distill Not Only Data but Also Rewards" as stages run by OpenRLHF's own trainers (see
docs/architecture.md for the layout)."""

__version__ = "0.1.0"
