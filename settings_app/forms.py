from django.contrib.auth.forms import AuthenticationForm


class LoginForm(AuthenticationForm):
    """The console's login form."""
