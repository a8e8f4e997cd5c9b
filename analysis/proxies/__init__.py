"""Zero-cost proxies and the theory score against trained accuracy: ranks, reports and picks."""
