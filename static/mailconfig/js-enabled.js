document.documentElement.classList.replace("no-js", "js"); // lets CSS hide what JavaScript reveals
