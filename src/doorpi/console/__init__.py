"""The admin's desk in the browser, on the laptop only (`doorpi admin console`)."""
