"""Online serving: online reads, pushes behind their validation gate, quarantine, the ordered stores."""
