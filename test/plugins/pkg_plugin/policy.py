DENIED_USER = "mallory"
