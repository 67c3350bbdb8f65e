// The consoles' index page: three links and the language toggle.
import { $ } from "./dom.js";
import { setupLangToggle } from "./i18n.js";

setupLangToggle($("#lang"));
