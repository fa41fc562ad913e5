"""The Mail Server page: form, saving, stored configuration, encryption and audit."""
