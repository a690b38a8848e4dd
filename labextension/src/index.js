// "Shut down and return to site" for pyramid_notebook, in Notebook 7 and JupyterLab 4.
//
// Notebook 7 no longer loads custom.js, so the original's File menu item is now a
// prebuilt extension. The site's shutdown URL arrives in the page config
// (pyramidNotebookShutdownUrl); without it the extension does nothing, so it is
// harmless in any other Jupyter server.
import { PageConfig } from '@jupyterlab/coreutils';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { Widget } from '@lumino/widgets';

const COMMAND = 'pyramid-notebook:shutdown';
const LABEL = 'Shut down and return to site';

class ShutdownButton extends Widget {
  constructor(commands) {
    const node = document.createElement('button');
    node.type = 'button';
    node.textContent = LABEL;
    node.title = 'Stop this notebook server and go back to the web site';
    super({ node });
    this.id = 'pyramid-notebook-shutdown';
    this.addClass('pyramid-notebook-shutdown');
    node.addEventListener('click', () => commands.execute(COMMAND));
  }
}

const plugin = {
  id: 'pyramid-notebook-shutdown:plugin',
  description: 'A control that shuts the notebook down and returns to the web site.',
  autoStart: true,
  optional: [IMainMenu],
  activate: (app, mainMenu) => {
    const url = PageConfig.getOption('pyramidNotebookShutdownUrl');
    if (!url) {
      return;
    }
    app.commands.addCommand(COMMAND, {
      label: LABEL,
      execute: () => {
        // The site's shutdown view stops this server and redirects to the site.
        window.location.assign(url);
      }
    });
    app.shell.add(new ShutdownButton(app.commands), 'top', { rank: 1000 });
    if (mainMenu) {
      mainMenu.fileMenu.addGroup([{ command: COMMAND }], 1000);
    }
  }
};

export default plugin;
